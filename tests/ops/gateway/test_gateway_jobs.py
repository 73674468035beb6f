"""Jobs over a real gateway: dispatched on a Redis nudge or by the poll, logs and results acknowledged."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from ops.rpc import runner_pb2
from shared.db import connection
from shared.domain import job_signing
from shared.keyring import keyring
from shared.models import RunnerJob, RunnerJobLog, new_sortable_id, utcnow
from shared.runner_keys import load_job_signing_key
from shared.runners import signals
from shared.runners.jobs import seal_payload


def _queue_job(settings, enrolled, *, publish: bool) -> str:
    """A signed queued job for the runner, as the worker writes one (no step behind it)."""
    job_id = new_sortable_id("job")
    now = utcnow()
    nonce = secrets.token_hex(16)
    not_after = now + timedelta(seconds=300)
    payload = job_signing.job_payload(
        job_id=job_id,
        tenant_id=enrolled.tenant_id,
        runner_id=enrolled.runner_id,
        argv=["true"],
        script=None,
        shell=None,
        env={},
        cwd=None,
        timeout_seconds=30,
        not_after=int(not_after.timestamp()),
        nonce=nonce,
    )
    signature = job_signing.sign(load_job_signing_key(settings), payload)
    with connection():
        RunnerJob.create(
            id=job_id,
            tenant=enrolled.tenant_id,
            runner=enrolled.runner_id,
            status="queued",
            payload=seal_payload(payload, keyring(settings)),
            signature=signature.hex(),
            nonce=nonce,
            not_after=not_after,
            deadline_at=now + timedelta(seconds=60),
            timeout_seconds=30,
        )
    if publish:
        signals.publish(
            settings,
            signals.jobs_channel(settings),
            {"runner_id": enrolled.runner_id, "job_id": job_id},
        )
    return job_id


def _job(job_id: str) -> RunnerJob:
    with connection():
        return RunnerJob.get_by_id(job_id)


def _is_job(job_id):
    return lambda message: message.HasField("job") and message.job.job_id == job_id


def _is_ack(kind, seq):
    return lambda message: (
        message.HasField("ack") and message.ack.kind == kind and message.ack.seq == seq
    )


def test_a_published_job_is_sent_signed_and_marked_dispatched(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)
    time.sleep(0.5)

    started = time.monotonic()
    job_id = _queue_job(gateway.settings, enrolled, publish=True)
    message = stream.wait_for(_is_job(job_id), 5)

    assert time.monotonic() - started < 1.5  # the nudge, not the 2 s poll
    document = job_signing.verify(
        enrolled.response.job_signing_public_key, message.job.payload, message.job.signature
    )
    assert document["runner_id"] == enrolled.runner_id
    deadline = time.monotonic() + 5
    while _job(job_id).status != "dispatched":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stream.close()


def test_a_queued_job_without_a_nudge_is_found_by_the_poll(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)

    job_id = _queue_job(gateway.settings, enrolled, publish=False)

    stream.wait_for(_is_job(job_id), 6)
    stream.close()


def test_log_chunks_are_acked_once_stored_and_a_bad_result_is_rejected(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)
    job_id = _queue_job(gateway.settings, enrolled, publish=True)
    stream.wait_for(_is_job(job_id), 5)

    stream.send(runner_pb2.RunnerMessage(job_accepted=runner_pb2.JobAccepted(job_id=job_id)))
    chunk = runner_pb2.LogChunk(job_id=job_id, seq=1, stream="stdout", data=b"hello\n")
    stream.send(runner_pb2.RunnerMessage(log_chunk=chunk))
    stream.send(runner_pb2.RunnerMessage(log_chunk=chunk))  # a replay after a reconnect
    payload = job_signing.result_payload(
        job_id=job_id, runner_id=enrolled.runner_id, status="succeeded", exit_code=0, last_seq=1
    )
    stream.send(
        runner_pb2.RunnerMessage(
            job_result=runner_pb2.JobResult(
                job_id=job_id, seq=2, payload=payload, signature=b"\x00" * 64
            )
        )
    )

    stream.wait_for(_is_ack("result", 2), 5)
    log_acks = [m.ack for m in stream.received if _is_ack("log", 1)(m)]
    assert len(log_acks) == 2 and not any(ack.error for ack in log_acks)
    result_ack = next(m.ack for m in stream.received if _is_ack("result", 2)(m))
    assert "bad signature" in result_ack.error
    with connection():
        assert RunnerJobLog.select().where(RunnerJobLog.job == job_id).count() == 1
    assert _job(job_id).status == "accepted"
    stream.close()


def test_a_job_sent_on_a_stream_that_died_is_sent_again_on_the_next_one(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    first = gateway.connect(enrolled)
    job_id = _queue_job(gateway.settings, enrolled, publish=True)
    first.wait_for(_is_job(job_id), 5)
    first.close()  # gone before the runner said it accepted the job

    second = gateway.connect(enrolled)

    second.wait_for(_is_job(job_id), 5)
    assert _job(job_id).status == "dispatched"
    second.close()


def test_a_runner_is_told_to_stop_a_job_core_ended_without_it(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)
    job_id = _queue_job(gateway.settings, enrolled, publish=True)
    stream.wait_for(_is_job(job_id), 5)
    stream.send(runner_pb2.RunnerMessage(job_accepted=runner_pb2.JobAccepted(job_id=job_id)))
    deadline = time.monotonic() + 5
    while _job(job_id).status != "accepted":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    with connection():  # what the reconciler does when the job's execution was cancelled
        RunnerJob.update(status="cancelled", ended_at=utcnow(), error="its execution ended").where(
            RunnerJob.id == job_id
        ).execute()

    cancel = stream.wait_for(
        lambda message: message.HasField("cancel") and message.cancel.job_id == job_id, 6
    )
    assert cancel.cancel.reason == "its execution ended"
    time.sleep(2.5)  # another poll round: told once per stream
    assert sum(1 for m in stream.received if m.HasField("cancel")) == 1
    stream.close()
