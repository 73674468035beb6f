"""Signed jobs and results: the runner refuses a forged, expired or replayed job, Core a forged result.

Must show (issue 11): a job with a bad signature, one past ``not_after``, one
replayed -> the runner refuses each and Core records why; a result with a bad
signature is rejected by Core.

The bent jobs are rows the test writes itself (what ``shared.runners.jobs.create_job``
writes, with one part changed), followed by the nudge the worker would publish:
the real gateway sends them and the real runner judges them.
"""

from __future__ import annotations

import queue
import threading
import time
from datetime import timedelta
from pathlib import Path

import grpc

from ops.rpc import runner_pb2, runner_pb2_grpc
from shared.db import connection, write_transaction
from shared.domain import job_signing
from shared.models import AuditLog, RunnerJob, utcnow
from tests.support.runner_stack import Agent, RunnerStack


def _marker_job(stack: RunnerStack, agent: Agent, tmp_path: Path, name: str, **bent):
    """A queued job for ``agent`` that appends a line to a file of its own if it ever runs."""
    marker = tmp_path / f"{name}.ran"
    job = stack.signed_job(agent.row(), argv=["sh", "-c", f"echo ran >> {marker}"], **bent)
    stack.nudge(agent.runner_id, job.id)
    return job, marker


def test_forged_expired_and_replayed_jobs_are_refused_and_core_records_why(
    stack: RunnerStack, tmp_path: Path
):
    agent = stack.enroll("target")
    # An expired job would be ended by the reconciler before its dispatch; keep it away.
    stack.processes["scheduler"].stop()

    honest, honest_marker = _marker_job(stack, agent, tmp_path, "honest")
    done = stack.wait_job(honest.id, ("succeeded",))
    assert honest_marker.read_text() == "ran\n" and done.exit_code == 0

    forger = job_signing.new_signing_key()
    forged, forged_marker = _marker_job(stack, agent, tmp_path, "forged", signing_key=forger)
    expired, expired_marker = _marker_job(
        stack, agent, tmp_path, "expired", not_after=utcnow() - timedelta(seconds=30)
    )
    replayed, replayed_marker = _marker_job(stack, agent, tmp_path, "replayed", nonce=honest.nonce)

    cases = {
        forged.id: ("bad signature", forged_marker),
        expired.id: ("expired", expired_marker),
        replayed.id: ("replayed", replayed_marker),
    }
    for job_id, (reason, marker) in cases.items():
        row = stack.wait_job(job_id, ("refused", "succeeded", "failed", "lost"))
        assert row.status == "refused", (reason, row.status, row.error)
        assert reason in (row.error or ""), (reason, row.error)
        assert not marker.exists(), f"{reason}: the command ran"
    with connection():
        refused = {
            row.target: row.metadata_redacted
            for row in AuditLog.select().where(AuditLog.action == "runner.job_refused")
        }
    for job_id, (reason, _) in cases.items():
        assert reason in refused.get(f"runner-job:{job_id}", ""), (reason, refused)

    # The honest job delivered again under its own id is not run again either.
    with connection(), write_transaction():
        RunnerJob.update(status="queued").where(RunnerJob.id == honest.id).execute()
    stack.nudge(agent.runner_id, honest.id)
    time.sleep(3)
    assert honest_marker.read_text() == "ran\n"
    assert agent.running(), agent.output()[-3000:]


def test_a_result_signed_with_another_key_is_rejected_by_core(stack: RunnerStack):
    agent = stack.enroll("victim")
    agent.stop()
    agent.wait_status("offline", timeout_s=20)
    # A job the runner was given (dispatched), so only its result is missing.
    job = stack.signed_job(agent.row(), argv=["true"])
    with connection(), write_transaction():
        RunnerJob.update(status="dispatched", dispatched_at=utcnow()).where(
            RunnerJob.id == job.id
        ).execute()

    certificate, key = agent.client_pem()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=agent.ca_pem(), private_key=key, certificate_chain=certificate
    )
    forged = job_signing.result_payload(
        job_id=job.id,
        runner_id=agent.runner_id,
        status="succeeded",
        exit_code=0,
        error=None,
        started_at_ms=int(time.time() * 1000) - 5,
        ended_at_ms=int(time.time() * 1000),
        duration_ms=5,
        stdout_bytes=0,
        stderr_bytes=0,
        stdout_capped=False,
        stderr_capped=False,
        last_seq=0,
    )
    wrong_key = job_signing.new_signing_key()
    outgoing: queue.Queue = queue.Queue()
    outgoing.put(
        runner_pb2.RunnerMessage(
            hello=runner_pb2.Hello(inventory=runner_pb2.Inventory(hostname="x"))
        )
    )
    outgoing.put(
        runner_pb2.RunnerMessage(
            job_result=runner_pb2.JobResult(
                job_id=job.id, seq=1, payload=forged, signature=job_signing.sign(wrong_key, forged)
            )
        )
    )
    stop = threading.Event()

    def requests():
        while not stop.is_set():
            try:
                yield outgoing.get(timeout=0.2)
            except queue.Empty:
                continue

    acks = []
    with grpc.secure_channel(stack.gateway_address, credentials) as channel:
        stub = runner_pb2_grpc.RunnerGatewayStub(channel)
        stream = stub.Connect(
            requests(), metadata=(("x-runner-token", agent.session_token()),), timeout=20
        )
        try:
            for message in stream:
                if message.WhichOneof("body") == "ack" and message.ack.kind == "result":
                    acks.append(message.ack)
                    break
        finally:
            stop.set()
            stream.cancel()

    assert len(acks) == 1 and acks[0].job_id == job.id
    assert "signature" in acks[0].error, acks[0]
    row = stack.job(job.id)
    assert row.status == "dispatched" and row.exit_code is None and row.result_json is None
    with connection():
        rejected = list(
            AuditLog.select().where(
                AuditLog.action == "runner.result_rejected",
                AuditLog.target == f"runner-job:{job.id}",
            )
        )
    assert len(rejected) == 1 and "bad signature" in rejected[0].metadata_redacted
