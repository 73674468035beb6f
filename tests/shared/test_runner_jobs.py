"""Runner jobs on every backend: signing, dispatch states, log chunks once, results once, expiry, denial races.

The test plays both the worker (claim, then the job and the lease hand-over in
one transaction, as worker/steps/runner.py does) and the runner (results
signed by a test identity key).
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from shared import secrets_store
from shared.domain import job_signing
from shared.engine.executions import cancel_execution
from shared.keyring import keyring
from shared.models import (
    AuditLog,
    Execution,
    RunnerDenial,
    RunnerJob,
    RunnerJobLog,
    StepRun,
    Tenant,
    utcnow,
)
from shared.runner_keys import load_job_signing_key
from shared.runners import denylist, jobs, masking
from tests.support.runner_rows import SECRET, Stack, make_runner, signed_result


@pytest.fixture
def stack(db, make_settings):
    settings = make_settings()
    masking.use_settings(settings)
    tenant = Tenant.create(name="Acme", slug="acme", mode="saas")
    secrets_store.put(keyring(settings), tenant.id, "TOKEN", SECRET, actor="test")
    runner, key = make_runner(tenant.id, labels={"role": "db"})
    return Stack(settings, tenant, runner, key)


def test_a_job_is_signed_by_core_and_parks_the_step(stack):
    run_id, job = stack.start()

    document = job_signing.verify(
        load_job_signing_key(stack.settings).public_key(),
        jobs.open_payload(job, keyring(stack.settings)),
        bytes.fromhex(job.signature),
    )
    run = StepRun.get_by_id(run_id)
    assert document["argv"] == ["echo", "hi"] and document["runner_id"] == stack.runner.id
    assert document["not_after"] - int(utcnow().timestamp()) <= 300
    assert run.status == "running" and run.lease_owner == f"runner-job:{job.id}"
    assert run.lease_expires_at == job.deadline_at + timedelta(seconds=30)
    assert Execution.get_by_id(run.execution_id).status == "running"
    assert [queued.id for queued in jobs.jobs_to_dispatch(stack.runner.id)] == [job.id]


def test_dispatch_and_acceptance_move_the_job_forward_once(stack):
    _, job = stack.start()

    jobs.mark_dispatched([job.id])
    jobs.record_accepted(stack.runner.id, job.id)
    jobs.mark_dispatched([job.id])  # a late duplicate changes nothing

    stored = RunnerJob.get_by_id(job.id)
    assert stored.status == "accepted" and stored.dispatched_at and stored.accepted_at
    assert jobs.jobs_to_dispatch(stack.runner.id) == []


def test_log_chunks_are_stored_once_masked_and_make_the_tails(stack):
    run_id, job = stack.start()

    first = jobs.record_log_chunk(stack.runner.id, job.id, 1, "stdout", b"line one\n")
    again = jobs.record_log_chunk(stack.runner.id, job.id, 1, "stdout", b"line one\n")
    jobs.record_log_chunk(stack.runner.id, job.id, 2, "stderr", f"token={SECRET}\n".encode())
    jobs.record_log_chunk(stack.runner.id, job.id, 3, "stdout", b"line two\n")
    stack.result(job, exit_code=0)

    stored = RunnerJob.get_by_id(job.id)
    output = json.loads(StepRun.get_by_id(run_id).output_redacted)
    assert (first, again) == (True, False)
    assert RunnerJobLog.select().count() == 3
    assert SECRET not in "".join(row.data for row in RunnerJobLog.select())
    assert stored.stdout_tail == "line one\nline two\n"
    assert SECRET not in stored.stderr_tail and "token=" in stored.stderr_tail
    assert SECRET in jobs.open_payload(job, keyring(stack.settings)).decode()  # it is sent
    assert SECRET not in job.payload and SECRET not in stored.payload  # never kept in plaintext
    assert output["exit_code"] == 0 and output["stdout"] == "line one\nline two\n"
    assert output["output"]["job_id"] == job.id


def test_a_chunk_for_a_job_of_another_runner_is_rejected(stack):
    _, job = stack.start()
    other, _ = make_runner(stack.tenant.id, name="host-2")

    with pytest.raises(jobs.ResultRejected, match="has no job"):
        jobs.record_log_chunk(other.id, job.id, 1, "stdout", b"x")


def test_the_expected_exit_completes_the_step_and_the_execution(stack):
    run_id, job = stack.start()

    stack.result(job, exit_code=0)

    run = StepRun.get_by_id(run_id)
    assert run.status == "succeeded" and run.lease_owner is None
    assert Execution.get_by_id(run.execution_id).status == "succeeded"
    assert RunnerJob.get_by_id(job.id).status == "succeeded"


def test_a_nonzero_exit_fails_the_step_unless_retry_on_names_it(stack):
    run_id, job = stack.start("retry: {max: 2}")

    stack.result(job, status="failed", exit_code=3)

    run = StepRun.get_by_id(run_id)
    assert run.status == "failed" and "exited with code 3" in run.error
    assert Execution.get_by_id(run.execution_id).status == "failed"


def test_an_exit_code_named_in_retry_on_is_retried_with_a_delayed_wakeup(stack):
    run_id, job = stack.start("retry: {max: 2, backoff_ms: 10, jitter: false}\n    retry_on: [3]")

    stack.result(job, status="failed", exit_code=3)

    run = StepRun.get_by_id(run_id)
    assert run.status == "pending" and run.lease_owner is None
    assert Execution.get_by_id(run.execution_id).status == "running"
    # The next attempt is claimed and dispatched as a new job.
    second = stack.dispatch(run_id)
    assert second.attempt == 2 and second.id != job.id


def test_a_refusal_fails_the_step_naming_the_reason_and_is_audited(stack):
    run_id, job = stack.start("retry: {max: 2}")

    stack.result(job, status="refused", exit_code=None, error="replayed nonce")

    run = StepRun.get_by_id(run_id)
    assert run.status == "failed" and "replayed nonce" in run.error
    assert RunnerJob.get_by_id(job.id).error == "replayed nonce"
    assert AuditLog.select().where(AuditLog.action == "runner.job_refused").count() == 1


def test_a_result_with_a_bad_signature_is_rejected_and_audited(stack):
    run_id, job = stack.start()
    payload, _ = signed_result(stack.key, job.id, stack.runner.id)
    forged = job_signing.sign(job_signing.new_signing_key(), payload)

    with pytest.raises(jobs.ResultRejected, match="bad signature"):
        jobs.record_result(stack.runner.id, job.id, 1, payload, forged, dispatcher=stack.dispatcher)

    assert RunnerJob.get_by_id(job.id).status == "queued"
    assert StepRun.get_by_id(run_id).status == "running"
    assert AuditLog.select().where(AuditLog.action == "runner.result_rejected").count() == 1


def test_a_result_signed_for_another_job_is_rejected(stack):
    _, job = stack.start()
    payload, signature = signed_result(stack.key, "job_other", stack.runner.id)

    with pytest.raises(jobs.ResultRejected, match="job_other"):
        jobs.record_result(
            stack.runner.id, job.id, 1, payload, signature, dispatcher=stack.dispatcher
        )


def test_a_second_result_for_the_same_job_changes_nothing(stack):
    run_id, job = stack.start()
    stack.result(job, exit_code=0)

    stack.result(job, status="failed", exit_code=9)

    assert RunnerJob.get_by_id(job.id).exit_code == 0
    assert StepRun.get_by_id(run_id).status == "succeeded"


def test_a_result_after_the_attempt_moved_on_is_only_recorded(stack):
    run_id, job = stack.start()
    StepRun.update(lease_owner="someone-else").where(StepRun.id == run_id).execute()

    stack.result(job, exit_code=0)

    assert RunnerJob.get_by_id(job.id).status == "succeeded"
    assert StepRun.get_by_id(run_id).status == "running"


def test_overdue_jobs_are_lost_or_timed_out_and_retried(stack):
    lost_run, lost = stack.start("retry: {max: 1, backoff_ms: 10}")
    later = utcnow() + timedelta(seconds=lost.timeout_seconds + 3600)

    count = jobs.expire_overdue(stack.dispatcher, later)

    run = StepRun.get_by_id(lost_run)
    assert count == 1 and RunnerJob.get_by_id(lost.id).status == "lost"
    assert run.status == "pending" and "was lost" in run.error


def test_an_accepted_job_past_its_deadline_times_out(stack):
    run_id, job = stack.start()
    jobs.record_accepted(stack.runner.id, job.id)

    jobs.expire_overdue(stack.dispatcher, job.deadline_at + timedelta(seconds=1))

    assert RunnerJob.get_by_id(job.id).status == "timed_out"
    run = StepRun.get_by_id(run_id)
    assert run.status == "failed" and "timed out" in run.error


def test_a_job_never_accepted_before_not_after_is_lost_at_once(stack):
    _, job = stack.start()
    RunnerJob.update(deadline_at=utcnow() + timedelta(hours=1)).execute()

    count = jobs.expire_overdue(stack.dispatcher, job.not_after + timedelta(seconds=1))

    assert count == 1 and RunnerJob.get_by_id(job.id).status == "lost"


def _together(db, *actions) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(actions))

    def run(action) -> None:
        db.connect(reuse_if_open=True)
        try:
            barrier.wait()
            action()
        except BaseException as error:  # noqa: BLE001 - asserted by the caller
            errors.append(error)
        finally:
            db.close()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_two_results_for_one_job_at_once_store_one(db, stack):
    run_id, job = stack.start()
    db.close()

    errors = _together(
        db,
        lambda: stack.result(job, exit_code=0),
        lambda: stack.result(job, status="failed", exit_code=4),
    )

    db.connect(reuse_if_open=True)
    stored = RunnerJob.get_by_id(job.id)
    run = StepRun.get_by_id(run_id)
    assert errors == []
    assert stored.exit_code in (0, 4)
    assert run.status == ("succeeded" if stored.exit_code == 0 else "failed")


def test_a_denial_while_the_result_is_recorded_ends_the_job_once(db, stack):
    run_id, job = stack.start()
    db.close()

    errors = _together(
        db,
        lambda: stack.result(job, exit_code=0),
        lambda: denylist.deny(
            stack.tenant.id,
            stack.runner.id,
            "compromised",
            "admin@acme.test",
            settings=stack.settings,
            dispatcher=stack.dispatcher,
        ),
    )

    db.connect(reuse_if_open=True)
    stored = RunnerJob.get_by_id(job.id)
    run = StepRun.get_by_id(run_id)
    assert errors == []
    assert stored.status in ("succeeded", "denied")
    if stored.status == "denied":
        assert run.status == "failed" and "denylist by admin@acme.test" in run.error
    else:
        assert run.status == "succeeded"
    assert [row.runner_id for row in RunnerDenial.select()] == [stack.runner.id]


def test_a_job_of_an_ended_execution_is_not_dispatched_and_is_cancelled(stack):
    run_id, job = stack.start()
    execution_id = StepRun.get_by_id(run_id).execution_id
    cancel_execution(execution_id, stack.tenant.id, actor="test", reason="no longer needed")

    queued = jobs.jobs_to_dispatch(stack.runner.id)
    count = jobs.expire_overdue(stack.dispatcher)

    assert queued == [] and count == 1
    assert RunnerJob.get_by_id(job.id).status == "cancelled"
    assert StepRun.get_by_id(run_id).status == "cancelled"


def test_a_job_queued_as_its_runner_was_denied_is_ended_by_the_reconciler(stack):
    run_id, job = stack.start()
    # The denial committed without seeing the job (it was not committed yet).
    RunnerDenial.create(tenant=stack.tenant.id, runner=stack.runner.id, created_by="admin")

    count = jobs.expire_overdue(stack.dispatcher)

    assert count == 1 and RunnerJob.get_by_id(job.id).status == "denied"
    run = StepRun.get_by_id(run_id)
    assert run.status == "failed" and "is denied or retired" in run.error
