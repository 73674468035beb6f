"""Two scheduler processes and a worker: one execution per slot, none missed or doubled."""

from __future__ import annotations

import time
from datetime import datetime

from shared.db import connection
from shared.models import Execution
from tests.support.processes import Process

EVERY_SECOND = """
id: tick
name: every second
triggers:
  - type: cron
    expr: "* * * * * *"
steps:
  - id: note
    type: condition
    expr: "trigger.type == 'cron' and trigger.scheduled_at is string"
"""


def slots() -> list[datetime]:
    with connection():
        keys = [row.dedupe_key for row in Execution.select(Execution.dedupe_key)]
    return sorted(datetime.strptime(key.split(":", 2)[2], "%Y-%m-%dT%H:%M:%SZ") for key in keys)


def test_two_schedulers_fire_each_slot_once_and_disable_stops_them(engine):
    second = Process(engine.settings, ["scheduler"], engine.tmp_path / "scheduler-2.log").start()
    try:
        engine.put_workflow("tick", EVERY_SECOND)
        time.sleep(6.5)

        fired = slots()
        assert len(fired) >= 4, engine.scheduler.output()[-3000:]
        assert len(fired) == len(set(fired))
        gaps = {
            (later - earlier).total_seconds()
            for earlier, later in zip(fired, fired[1:], strict=False)
        }
        assert gaps == {1.0}, fired

        disabled_at = datetime.utcnow()
        engine.client.post("/api/workflows/tick/disable", headers=engine.headers())
        time.sleep(3)
        late = [slot for slot in slots() if (slot - disabled_at).total_seconds() > 2]
        assert late == []

        with connection():
            statuses = {row.status for row in Execution.select(Execution.status)}
        assert statuses <= {"succeeded", "queued", "running"}
        assert "succeeded" in statuses
    finally:
        second.stop()
