"""The fault suite's counting: which calls at the target count as run twice, and which are replays."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from shared.engine.executions import start_execution
from shared.models import Execution, StepRun, Tenant, utcnow
from shared.workflows import put_workflow
from tests.support.burst import Answer, Tally, tally

YAML = """
id: wf
name: two calls
triggers: [{type: webhook}]
steps:
  - id: first
    type: http
    url: http://127.0.0.1:9/first
  - id: second
    type: http
    url: http://127.0.0.1:9/second
"""
#: Each case: calls of step ``first`` (seconds after its run started), its claimed attempts,
#: a second execution of the same payload, and the run-twice count expected.
#: The first step ends at 1.0 s, the second step is first called at 1.5 s.
CASES = {
    "one call": ([0.5], 1, False, 0),
    "a lost attempt's call repeated before the step ended": ([0.2, 0.9], 2, False, 0),
    "a call after the next step was called": ([0.5, 1.6], 2, False, 1),
    "a call after the step ended": ([0.5, 1.2], 2, False, 1),
    "more calls than claimed attempts": ([0.3, 0.5], 1, False, 1),
    "one payload, two executions": ([0.5], 1, True, 1),
}


def hit(execution_id: str, step_id: str, at: float) -> dict:
    return {
        "headers": {"Idempotency-Key": f"{execution_id}:{step_id}"},
        "path": f"/{step_id}",
        "body": "{}",
        "received_at": at,
    }


def finished_execution(workflow, started, *, attempts: int) -> str:
    execution = start_execution(
        workflow,
        trigger_type="webhook",
        trigger_ref="",
        context={"body": {"n": 0}},
        dedupe_key=None,
        actor="test",
    ).execution
    ended = started + timedelta(seconds=2)
    Execution.update(status="succeeded", ended_at=ended).where(
        Execution.id == execution.id
    ).execute()
    StepRun.update(
        status="succeeded", attempt=attempts, ended_at=started + timedelta(seconds=1)
    ).where(StepRun.execution == execution.id).execute()
    StepRun.create(
        tenant=execution.tenant_id,
        execution=execution.id,
        step_id="second",
        step_index=1,
        status="succeeded",
        attempt=1,
        max_attempts=1,
        ended_at=ended,
    )
    return execution.id


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", list(CASES))
def test_run_twice_counts_only_what_the_claims_do_not_explain(db, backend, case):
    calls, attempts, duplicate, expected = CASES[case]
    tenant = Tenant.create(name="Acme", slug="acme", mode="saas")
    workflow = put_workflow(tenant.id, "wf", YAML, actor="test")[0]
    started = utcnow()
    execution_id = finished_execution(workflow, started, attempts=attempts)
    if duplicate:
        finished_execution(workflow, started, attempts=attempts)
    base = started.replace(tzinfo=timezone.utc).timestamp()
    hits = {
        "/first": [hit(execution_id, "first", base + at) for at in calls],
        "/second": [hit(execution_id, "second", base + 1.5)],
    }
    answers = [Answer(0, status=202, body={"execution_id": execution_id})]

    result = tally(Tally("test"), "wf", ["first", "second"], answers, hits, wait_s=1, began=0)

    assert (result.lost, result.succeeded) == (0, 1)
    assert result.run_twice == expected, result.twice
    assert result.replays == len(calls) - 1
