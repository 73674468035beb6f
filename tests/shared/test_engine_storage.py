"""Engine invariants on every backend: race-free dedupe, leases, attempts that run out."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shared.domain.engine_rules import Outcome
from shared.engine import progress
from shared.engine.executions import start_execution
from shared.models import Execution, StepRun, Tenant, utcnow
from shared.workflows import put_workflow

YAML = """
id: wf
name: two steps
triggers: [{type: webhook}]
steps:
  - id: one
    type: condition
    expr: "true"
    retry: {max: 1}
  - id: two
    type: condition
    expr: "true"
"""


@pytest.fixture
def workflow(db):
    tenant = Tenant.create(name="Acme", slug="acme", mode="saas")
    return put_workflow(tenant.id, "wf", YAML, actor="test")[0]


def start(workflow, key="k"):
    return start_execution(
        workflow, trigger_type="webhook", trigger_ref="", context={}, dedupe_key=key, actor="test"
    )


def test_concurrent_starts_with_one_key_make_one_execution(db, workflow):
    results, errors = [], []

    def fire():
        db.connect(reuse_if_open=True)
        try:
            results.append(start(workflow, "same"))
        except Exception as error:  # noqa: BLE001 - asserted below
            errors.append(error)
        finally:
            db.close()

    threads = [threading.Thread(target=fire) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len({result.execution.id for result in results}) == 1
    assert sum(not result.deduplicated for result in results) == 1
    assert Execution.select().count() == 1


def test_a_dedupe_window_lets_the_key_run_again_once_it_passed(db, workflow):
    first = start(workflow)
    Execution.update(created_at=utcnow() - timedelta(seconds=120)).execute()

    inside = start_execution(
        workflow,
        trigger_type="webhook",
        trigger_ref="",
        context={},
        dedupe_key="k",
        dedupe_window_seconds=300,
        actor="t",
    )
    outside = start_execution(
        workflow,
        trigger_type="webhook",
        trigger_ref="",
        context={},
        dedupe_key="k",
        dedupe_window_seconds=60,
        actor="t",
    )

    assert inside.deduplicated and inside.execution.id == first.execution.id
    assert not outside.deduplicated and outside.execution.id != first.execution.id


def test_a_succeeded_step_is_never_claimed_again(db, workflow):
    run_id = start(workflow).wakeups[0].step_run_id
    claim, _ = progress.claim(run_id, "w1")
    recorded, wakeups = progress.complete(claim, Outcome("succeeded"))

    again, _ = progress.claim(run_id, "w2")

    assert recorded and len(wakeups) == 1
    assert again is None


def test_a_live_lease_blocks_a_second_claim_and_an_expired_one_passes_it_on(db, workflow):
    run_id = start(workflow).wakeups[0].step_run_id
    first, _ = progress.claim(run_id, "w1")

    blocked, _ = progress.claim(run_id, "w2")
    later = utcnow() + timedelta(minutes=5)
    second, _ = progress.claim(run_id, "w2", now=later)
    stale, _ = progress.complete(first, Outcome("succeeded"))
    fresh, _ = progress.complete(second, Outcome("succeeded"))

    assert blocked is None and second is not None and second.attempt == 2
    assert stale is False and fresh is True


def test_a_step_whose_worker_keeps_dying_fails_after_its_attempts(db, workflow):
    run_id = start(workflow).wakeups[0].step_run_id
    now = utcnow()
    for minutes in (0, 5, 10):  # two lost attempts are survivable, each lease left to expire
        claim, _ = progress.claim(run_id, f"w{minutes}", now=now + timedelta(minutes=minutes))
        assert claim is not None

    last, _ = progress.claim(run_id, "w-final", now=now + timedelta(minutes=15))

    run = StepRun.get_by_id(run_id)
    assert last is None and run.status == "failed" and "gave up after 3 lost attempt" in run.error
    assert Execution.get().status == "failed"


def test_batched_inserts_skip_taken_keys_and_chain_the_audit(db, workflow):
    from shared.audit import verify_all
    from shared.db import write_transaction
    from shared.engine.executions import NewExecution, insert_executions
    from shared.engine.specs import spec_of
    from shared.models import WorkflowVersion

    version = WorkflowVersion.get()
    spec = spec_of(version)

    def batch(keys):
        items = [
            NewExecution(workflow, version, spec, "cron", "* * * * *", {}, key) for key in keys
        ]
        with write_transaction():
            return insert_executions(items, actor="scheduler")

    first = batch(["s1", "s2", "s3"])
    second = batch(["s2", "s3", "s4"])

    assert len(first) == 3 and [started.execution.dedupe_key for started in second] == ["s4"]
    assert Execution.select().count() == 4 and StepRun.select().count() == 4
    assert verify_all()[1] is None
