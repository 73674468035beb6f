"""After downtime the scheduler fires what the misfire rules allow, from the slot it last fired."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import redis

from scheduler.main import Scheduler
from shared.bootstrap import prepare
from shared.db import connection
from shared.dispatch import Dispatcher
from shared.models import Execution
from shared.tenancy import tenant_by_slug
from shared.workflows import put_workflow

YAML = """
id: minutely
name: every minute
triggers:
  - type: cron
    expr: "* * * * *"
    {extra}
steps:
  - id: only
    type: condition
    expr: "true"
"""


def at(minute: int, second: int) -> float:
    return datetime(2026, 1, 1, 0, minute, second, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def fresh_scheduler(make_settings):
    settings = make_settings()
    prepare(settings)
    client = redis.Redis.from_url(settings.resolved_redis_url)

    def make(extra: str = "") -> Scheduler:
        with connection():
            put_workflow(
                tenant_by_slug("default").id, "minutely", YAML.format(extra=extra), actor="test"
            )
        return Scheduler(settings, client, Dispatcher(settings))

    return make


def fired_slots() -> list[str]:
    with connection():
        return sorted(
            row.dedupe_key[len("cron:0:") :] for row in Execution.select(Execution.dedupe_key)
        )


def test_a_restart_fires_only_the_most_recent_missed_slot_within_grace(fresh_scheduler):
    first = fresh_scheduler("misfire_grace_seconds: 40")
    first.tick(at(0, 5))  # a new trigger starts from now: nothing from the past
    first.tick(at(1, 1))
    assert fired_slots() == ["2026-01-01T00:01:00Z"]

    Scheduler(first.settings, first.client, first.dispatcher).tick(at(5, 30))  # down 4.5 minutes
    assert fired_slots() == ["2026-01-01T00:01:00Z", "2026-01-01T00:05:00Z"]

    Scheduler(first.settings, first.client, first.dispatcher).tick(
        at(9, 50)
    )  # the 00:09 slot is 50 s old
    assert fired_slots()[-1] == "2026-01-01T00:05:00Z"


def test_catch_up_fires_each_missed_slot_up_to_the_cap(fresh_scheduler):
    first = fresh_scheduler("catch_up: true\n    catch_up_limit: 3")
    first.tick(at(0, 5))
    first.tick(at(1, 1))

    Scheduler(first.settings, first.client, first.dispatcher).tick(at(20, 10))

    assert fired_slots() == [
        "2026-01-01T00:01:00Z",
        "2026-01-01T00:18:00Z",
        "2026-01-01T00:19:00Z",
        "2026-01-01T00:20:00Z",
    ]


def test_two_schedulers_on_one_slot_start_one_execution(fresh_scheduler):
    first = fresh_scheduler()
    second = Scheduler(first.settings, first.client, first.dispatcher)
    for scheduler in (first, second):
        scheduler.tick(at(0, 5))

    started = [scheduler.tick(at(1, 2)) for scheduler in (first, second)]

    assert sorted(started) == [0, 1] and fired_slots() == ["2026-01-01T00:01:00Z"]


def test_templates_see_the_slot_the_fire_time_and_the_expression(fresh_scheduler):
    import json

    first = fresh_scheduler()
    first.tick(at(0, 5))
    first.tick(at(1, 3))

    with connection():
        trigger = json.loads(Execution.get().trigger_context)["trigger"]
    assert trigger == {
        "type": "cron",
        "expr": "* * * * *",
        "tz": "UTC",
        "scheduled_at": "2026-01-01T00:01:00+00:00",
        "fired_at": "2026-01-01T00:01:03+00:00",
    }
