"""Parsing a large changed workflow happens beside the tick: cron keeps firing meanwhile."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import redis

from scheduler.cron_source import PARSE_WAIT_MS
from scheduler.main import Scheduler
from shared.bootstrap import prepare
from shared.db import connection
from shared.dispatch import Dispatcher
from shared.heartbeat import last_tick_key
from shared.models import Execution, Workflow, WorkflowVersion
from shared.tenancy import tenant_by_slug
from shared.workflows import put_workflow

EVERY_SECOND = """
id: every-second
name: every second
triggers:
  - type: cron
    expr: "* * * * * *"
    misfire_grace_seconds: 0
steps:
  - id: only
    type: condition
    expr: "true"
"""
#: Steps of the large workflow: each with two templates of its own, seconds to parse.
LARGE_STEPS = 1500
#: Longest a tick may take while the large workflow is parsed, in seconds.
TICK_SECONDS = PARSE_WAIT_MS / 1000 + 1.5


def large_workflow(steps: int) -> str:
    items = "".join(
        f"  - id: s{index}\n    type: http\n"
        f'    url: "https://example.com/{{{{ trigger.type }}}}/{index}"\n'
        f"    when: \"trigger.type == 'cron-{index}'\"\n"
        for index in range(steps)
    )
    return (
        f'id: large\nname: Large\ntriggers:\n  - type: cron\n    expr: "0 * * * *"\nsteps:\n{items}'
    )


def store_without_checking(tenant_id: str, text: str) -> int:
    """Store ``text`` as version 1 of workflow 'large', as a workflow stored under a higher
    step limit would be (put_workflow would parse it first, doubling the test's time)."""
    workflow = Workflow.create(tenant=tenant_id, workflow_key="large", name="Large", yaml=text)
    WorkflowVersion.create(
        tenant=tenant_id, workflow=workflow.id, version=1, yaml=text, created_by="test"
    )
    return workflow.id


def test_ticks_go_on_firing_while_a_large_workflow_is_parsed(make_settings, database_url):
    settings = make_settings(database_url=database_url)  # the parse reads on its own connection
    prepare(settings)
    client = redis.Redis.from_url(settings.resolved_redis_url)
    with connection():
        tenant_id = tenant_by_slug("default").id
        put_workflow(tenant_id, "every-second", EVERY_SECOND, actor="test")
    scheduler = Scheduler(settings, client, Dispatcher(settings))
    now = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    scheduler.tick(now)  # arms the every-second trigger
    with connection():
        large_pk = store_without_checking(tenant_id, large_workflow(LARGE_STEPS))

    durations = []
    deadline = time.monotonic() + 300
    while large_pk not in scheduler.source.specs and time.monotonic() < deadline:
        now += 1
        started = time.monotonic()
        fired = scheduler.tick(now)
        durations.append((round(time.monotonic() - started, 2), fired))

    assert large_pk in scheduler.source.specs, "the large workflow was never parsed"
    assert any(key[1] == large_pk for key in scheduler.schedule.keys())
    # Parsing took several ticks, each short, and each fired its second's slot.
    assert len(durations) >= 2, durations
    assert all(seconds < TICK_SECONDS and fired == 1 for seconds, fired in durations), durations
    with connection():
        assert Execution.select().count() == len(durations)
    assert float(client.get(last_tick_key(settings))) == now
    client.close()
