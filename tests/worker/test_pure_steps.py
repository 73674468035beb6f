"""Pure steps (conditions) are worked out before the write lock and recorded by the transaction that reaches them.

The step runner runs in the test's process against a real database (each backend)
and a real Redis; what it sends is read back from the Redis queue.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis

from shared.bootstrap import prepare
from shared.db import connection
from shared.engine import outbox, progress
from shared.engine.executions import start_execution
from shared.models import Execution, StepRun, utcnow
from shared.tenancy import tenant_by_slug
from shared.workflows import put_workflow
from worker.step_chain import StepChain
from worker.step_runner import Runtime, run_step

THREE_CONDITIONS = """
id: pure
name: three conditions
triggers: [{type: webhook}]
steps:
  - {id: one, type: condition, expr: "body.severity == 'critical'"}
  - {id: two, type: condition, expr: "steps.one.output == true", on_false: fail}
  - {id: three, type: condition, expr: "execution.started_at is not none", on_false: fail}
"""


@pytest.fixture
def stack(make_settings, database_url):
    """Settings on the current backend (SQLite, PostgreSQL, MariaDB), prepared, and the Redis."""
    settings = make_settings(database_url=database_url)
    prepare(settings)
    queue = redis.Redis.from_url(settings.resolved_redis_url)
    with connection():
        tenant = tenant_by_slug(settings.default_tenant_slug)
        yield settings, tenant, queue
    queue.close()


def start(tenant, yaml_text, body):
    workflow = put_workflow(tenant.id, yaml_text.split("id: ")[1].split()[0], yaml_text, actor="t")[
        0
    ]
    started = start_execution(
        workflow,
        trigger_type="webhook",
        trigger_ref="",
        context={"body": body},
        dedupe_key=None,
        actor="t",
    )
    return started.execution.id, started.wakeups[0].step_run_id


def queued(settings, queue) -> int:
    """Messages waiting on the steps queue (now or delayed)."""
    namespace = settings.redis_namespace
    return queue.llen(f"{namespace}:steps") + queue.llen(f"{namespace}:steps.DQ")


def test_a_chain_of_conditions_runs_in_one_message(stack):
    settings, tenant, queue = stack
    execution_id, first_run = start(tenant, THREE_CONDITIONS, {"severity": "critical"})

    run_step(Runtime.build(settings), first_run)

    execution = Execution.get_by_id(execution_id)
    runs = list(
        StepRun.select().where(StepRun.execution == execution_id).order_by(StepRun.step_index)
    )
    assert execution.status == "succeeded"
    assert [(run.step_id, run.status, run.attempt) for run in runs] == [
        ("one", "succeeded", 1),
        ("two", "succeeded", 1),
        ("three", "succeeded", 1),
    ]
    assert all(run.started_at == execution.started_at for run in runs)
    assert queued(settings, queue) == 0


def test_a_condition_after_an_http_step_is_recorded_with_it_and_the_next_http_step_gets_a_message(
    stack, loopback
):
    settings, tenant, queue = stack
    loopback.route("/check", body={"healthy": False})
    yaml_text = f"""
id: mixed
name: http then condition then http
triggers: [{{type: webhook}}]
steps:
  - {{id: check, type: http, method: GET, url: "{loopback.url}/check"}}
  - {{id: unhealthy, type: condition, expr: "steps.check.body.healthy == false"}}
  - {{id: fix, type: http, method: POST, url: "{loopback.url}/fix"}}
"""
    execution_id, first_run = start(tenant, yaml_text, {})

    run_step(Runtime.build(settings), first_run)

    runs = {run.step_id: run for run in StepRun.select().where(StepRun.execution == execution_id)}
    assert runs["check"].status == "succeeded" and runs["unhealthy"].status == "succeeded"
    assert runs["fix"].status == "pending" and loopback.count("/fix") == 0
    assert queued(settings, queue) == 1


def test_a_false_condition_in_the_chain_ends_the_execution_and_skips_the_rest(stack):
    settings, tenant, queue = stack
    execution_id, first_run = start(tenant, THREE_CONDITIONS, {"severity": "info"})

    run_step(Runtime.build(settings), first_run)

    statuses = {
        run.step_id: run.status for run in StepRun.select().where(StepRun.execution == execution_id)
    }
    assert Execution.get_by_id(execution_id).status == "succeeded"
    assert statuses == {"one": "succeeded", "two": "skipped", "three": "skipped"}


def test_a_plan_made_for_another_attempt_is_not_used(stack):
    settings, tenant, _ = stack
    _, first_run = start(tenant, THREE_CONDITIONS, {"severity": "critical"})
    runtime = Runtime.build(settings)
    chain = StepChain(runtime.settings, runtime.plugins, runtime.keys)
    now = utcnow()
    chain.prepare(first_run, now)  # plans attempt 1
    taken, _ = progress.claim(first_run, "another-worker", now=now)  # attempt 1 goes elsewhere

    later = now + timedelta(minutes=5)  # ... and its lease runs out
    claim, wakeups = progress.claim(first_run, "this-worker", now=later, inline=chain)

    assert taken is not None and taken.attempt == 1
    assert claim is not None and claim.attempt == 2 and wakeups == []
    assert StepRun.get_by_id(first_run).status == "running"


def test_a_wakeup_with_a_delay_waits_on_the_delay_queue(stack):
    # How a pure step run inline is retried: it has no message of its own to retry.
    settings, tenant, queue = stack
    _, first_run = start(tenant, THREE_CONDITIONS, {"severity": "critical"})
    with connection():
        run = StepRun.get_by_id(first_run)
    wakeup = outbox.wakeup_for(run.id, _a_step(), delay_ms=60_000)

    outbox.send(Runtime.build(settings).dispatcher, [wakeup])

    assert queue.llen(f"{settings.redis_namespace}:steps.DQ") == 1
    assert queue.llen(f"{settings.redis_namespace}:steps") == 0


def _a_step():
    from shared.domain.workflow_spec import parse_workflow

    return parse_workflow(THREE_CONDITIONS).steps[0]


#: About three seconds of template work at ~10 µs a sandboxed call: far past 0.2 s.
SLOW_EXPRESSION = "range(100000)" + "|map('string')" * 3 + "|list|length > 0"


def test_an_inline_condition_is_held_to_its_own_timeout(stack):
    settings, tenant, queue = stack
    yaml_text = f"""
id: slow
name: a slow condition
triggers: [{{type: webhook}}]
steps:
  - id: slow
    type: condition
    timeout_seconds: 0.2
    expr: "{SLOW_EXPRESSION}"
"""
    execution_id, first_run = start(tenant, yaml_text, {})

    started = time.monotonic()
    run_step(Runtime.build(settings), first_run)
    elapsed = time.monotonic() - started

    run = StepRun.get(StepRun.execution == execution_id)
    assert run.status == "failed", (run.status, run.error)
    assert "exceeded its time limit of 0.2 s" in run.error
    assert Execution.get_by_id(execution_id).status == "failed"
    assert elapsed < 2.0, elapsed


def test_an_inline_condition_within_its_timeout_is_unaffected(stack):
    settings, tenant, _ = stack
    execution_id, first_run = start(tenant, THREE_CONDITIONS, {"severity": "critical"})

    run_step(Runtime.build(settings), first_run)
    time.sleep(0.3)  # past any deadline: a late raise must not reach this thread

    assert Execution.get_by_id(execution_id).status == "succeeded"
