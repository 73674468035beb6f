"""Runner jobs: written and signed by the worker, dispatched by a gateway, ended by a result.

A job ties one attempt of a `runner` step to one runner. The worker writes it
(and hands the step's lease to ``runner-job:<job_id>``); the gateway sends it
and stores what comes back — log chunks once per ``(runner, job, seq)``, and the
signed result, which completes the step attempt in the same transaction. A job
that never ends is ended by the reconciler (:func:`expire_overdue`), and a
denial ends a runner's jobs at once (shared.runners.denylist).

Lock order, as everywhere in the engine: the execution, then its step run, then
the job row; the audit chain's head last (taken at commit).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.fernet import MultiFernet
from peewee import JOIN, IntegrityError

from shared import audit
from shared.db import (
    in_write_transaction,
    insert_row,
    lock_for_update,
    update_row,
    write_transaction,
)
from shared.dispatch import Dispatcher
from shared.domain import job_signing
from shared.domain.engine_rules import ENDED_EXECUTION, Outcome, failure_outcome
from shared.engine import outbox, progress
from shared.engine.outbox import Wakeup
from shared.engine.specs import spec_of_execution
from shared.errors import AisOpsFlowError
from shared.keyring import keyring
from shared.models import (
    LOG_STREAMS,
    RUNNER_JOB_ENDED,
    Execution,
    Runner,
    RunnerDenial,
    RunnerJob,
    RunnerJobLog,
    StepRun,
    new_sortable_id,
    utcnow,
)
from shared.redaction import mask_secrets
from shared.runner_keys import load_job_signing_key
from shared.runners import masking
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Job statuses that may still change.
UNFINISHED = ("queued", "dispatched", "accepted")
#: Seconds a signed job stays acceptable to its runner (``not_after``).
JOB_VALIDITY_SECONDS = job_signing.MAX_JOB_VALIDITY_SECONDS
#: Seconds past the job's own timeout (and dispatch grace) before Core gives up on it.
DEADLINE_GRACE_SECONDS = 10
#: Seconds the step's lease outlives the job's deadline, so the reconciler ends the job first.
LEASE_AFTER_DEADLINE_SECONDS = 30
#: Characters of each stream kept as the job's (and the step's) output tail.
TAIL_CHARS = 4096
#: Most overdue jobs ended in one reconciler pass.
EXPIRE_BATCH = 200


class ResultRejected(AisOpsFlowError):
    """A runner's result or log chunk was not stored; the message says why (sent back in the Ack)."""

    status_code = 422


def lease_owner(job_id: str) -> str:
    """The lease owner of a step run whose attempt waits for job ``job_id``."""
    return f"runner-job:{job_id}"


def _unix(moment: datetime) -> int:
    return int(moment.replace(tzinfo=timezone.utc).timestamp())


def seal_payload(payload: bytes, keys: MultiFernet) -> str:
    """A job payload as stored: encrypted with Core's secret keys.

    The payload carries the env as rendered, secrets included; at rest it is
    ciphertext like the secrets store, and only the gateway opens it to send it.
    """
    return keys.encrypt(payload).decode()


def open_payload(job: RunnerJob, keys: MultiFernet) -> bytes:
    """The signed payload of ``job``, exactly as Core signed it."""
    return keys.decrypt(job.payload.encode())


def create_job(
    run: StepRun,
    runner: Runner,
    *,
    argv: list[str] | None,
    script: str | None,
    shell: str | None,
    env: dict[str, str],
    cwd: str | None,
    timeout_seconds: int,
    settings: Settings,
    now: datetime,
) -> RunnerJob:
    """Write the queued, signed job of ``run``'s current attempt (inside the caller's transaction).

    ``deadline_at`` is now + dispatch grace + timeout + DEADLINE_GRACE_SECONDS;
    the signature covers the payload exactly as the runner receives it.
    """
    job_id = new_sortable_id("job")
    nonce = secrets.token_hex(16)
    not_after = now + timedelta(seconds=JOB_VALIDITY_SECONDS)
    payload = job_signing.job_payload(
        job_id=job_id,
        tenant_id=run.tenant_id,
        runner_id=runner.id,
        argv=argv,
        script=script,
        shell=shell,
        env=env,
        cwd=cwd,
        timeout_seconds=timeout_seconds,
        not_after=_unix(not_after),
        nonce=nonce,
    )
    signature = job_signing.sign(load_job_signing_key(settings), payload)
    deadline = now + timedelta(
        seconds=settings.runner_dispatch_grace_seconds + timeout_seconds + DEADLINE_GRACE_SECONDS
    )
    job = RunnerJob(
        id=job_id,
        tenant=run.tenant_id,
        runner=runner.id,
        execution=run.execution_id,
        step_run=run.id,
        attempt=run.attempt,
        status="queued",
        payload=seal_payload(payload, keyring(settings)),
        signature=signature.hex(),
        nonce=nonce,
        not_after=not_after,
        deadline_at=deadline,
        timeout_seconds=timeout_seconds,
        created_at=now,
    )
    insert_row(RunnerJob, job.__data__)
    return job


def hand_over(run: StepRun, job: RunnerJob, input_json: str) -> None:
    """Give ``run``'s lease to ``job`` (inside the caller's transaction): the step stays running."""
    update_row(
        StepRun,
        run.id,
        {
            "lease_owner": lease_owner(job.id),
            "lease_expires_at": job.deadline_at + timedelta(seconds=LEASE_AFTER_DEADLINE_SECONDS),
            "input_redacted": input_json,
        },
    )


def jobs_to_dispatch(
    runner_id: str, limit: int = 100, *, redeliver: bool = False
) -> list[RunnerJob]:
    """The runner's queued jobs, oldest first (not those whose execution ended meanwhile).

    ``redeliver`` adds jobs sent before but never accepted: a stream that died just
    after a send lost them, and the runner answers a job id it already has by
    acknowledging it again, never by running it twice.
    """
    statuses = ("queued", "dispatched") if redeliver else ("queued",)
    return list(
        RunnerJob.select(RunnerJob)
        .join(Execution, JOIN.LEFT_OUTER, on=(RunnerJob.execution == Execution.id))
        .where(
            RunnerJob.runner == runner_id,
            RunnerJob.status.in_(statuses),
            Execution.status.is_null() | Execution.status.not_in(ENDED_EXECUTION),
        )
        .order_by(RunnerJob.created_at, RunnerJob.id)
        .limit(limit)
    )


#: How long after Core ended a running job its runner is still told to stop it, in seconds.
CANCEL_WINDOW_SECONDS = 600


def jobs_to_cancel(
    runner_ids: list[str], now: datetime | None = None
) -> list[tuple[str, str, str]]:
    """(runner id, job id, reason) for jobs these runners may still be running that Core ended.

    Core ends a job without its runner when the execution ended (cancelled,
    resolved at source) or its runner was denied; the command would otherwise run
    on the host until its own timeout. A job whose result came back is finished there.
    """
    if not runner_ids:
        return []
    now = now or utcnow()
    rows = (
        RunnerJob.select(RunnerJob.id, RunnerJob.runner, RunnerJob.status, RunnerJob.error)
        .join(Execution, JOIN.LEFT_OUTER, on=(RunnerJob.execution == Execution.id))
        .where(
            RunnerJob.runner.in_(runner_ids),
            RunnerJob.accepted_at.is_null(False),
            RunnerJob.result_json.is_null(),
            (
                (RunnerJob.status == "accepted") & Execution.status.in_(ENDED_EXECUTION)
                | RunnerJob.status.in_(("cancelled", "denied"))
                & (RunnerJob.ended_at >= now - timedelta(seconds=CANCEL_WINDOW_SECONDS))
            ),
        )
    )
    return [
        (row.runner_id, row.id, row.error or f"Core ended the job ({row.status})") for row in rows
    ]


def mark_dispatched(job_ids: list[str], now: datetime | None = None) -> None:
    """Record that these queued jobs were sent on their runner's stream."""
    if not job_ids:
        return
    with write_transaction():
        RunnerJob.update(status="dispatched", dispatched_at=now or utcnow()).where(
            RunnerJob.id.in_(job_ids), RunnerJob.status == "queued"
        ).execute()


def record_accepted(runner_id: str, job_id: str, now: datetime | None = None) -> None:
    """Record that the runner took the job (a repeated or late acceptance changes nothing)."""
    with write_transaction():
        RunnerJob.update(status="accepted", accepted_at=now or utcnow()).where(
            RunnerJob.id == job_id,
            RunnerJob.runner == runner_id,
            RunnerJob.status.in_(("queued", "dispatched")),
        ).execute()


def _job_of(runner_id: str, job_id: str) -> RunnerJob:
    job = RunnerJob.get_or_none(RunnerJob.id == job_id, RunnerJob.runner == runner_id)
    if job is None:
        raise ResultRejected(f"runner {runner_id} has no job {job_id}")
    return job


def record_log_chunk(
    runner_id: str,
    job_id: str,
    seq: int,
    stream: str,
    data: bytes,
    now: datetime | None = None,
    *,
    settings: Settings | None = None,
) -> bool:
    """Store one chunk of output, masked; False when ``(runner, job, seq)`` was stored before.

    ``settings`` name the keys that decrypt the tenant's secrets (see masking.tenant_secrets).
    """
    if not isinstance(seq, int) or seq < 1:
        raise ResultRejected(f"log chunk seq must be 1 or more, got {seq!r}")
    if stream not in LOG_STREAMS:
        raise ResultRejected(f"log chunk stream must be stdout or stderr, got {stream!r}")
    job = _job_of(runner_id, job_id)
    known = masking.tenant_secrets(job.tenant_id, settings)
    text = mask_secrets(data.decode("utf-8", "replace"), known)
    try:
        with write_transaction():
            RunnerJobLog.insert(
                tenant=job.tenant_id,
                runner=runner_id,
                job=job_id,
                seq=seq,
                stream=stream,
                data=text,
                at=now or utcnow(),
            ).execute()
    except IntegrityError:
        return False  # the unique (runner, job, seq) index: a replayed chunk
    return True


def tails(job_id: str, chars: int = TAIL_CHARS) -> dict[str, str]:
    """The last ``chars`` characters of each stream of the job, from its stored chunks."""
    collected: dict[str, list[str]] = {stream: [] for stream in LOG_STREAMS}
    sizes = dict.fromkeys(LOG_STREAMS, 0)
    rows = (
        RunnerJobLog.select(RunnerJobLog.stream, RunnerJobLog.data)
        .where(RunnerJobLog.job == job_id)
        .order_by(RunnerJobLog.seq.desc())
        .tuples()
    )
    for stream, data in rows:
        if sizes[stream] >= chars:
            if all(size >= chars for size in sizes.values()):
                break
            continue
        collected[stream].append(data)
        sizes[stream] += len(data)
    return {stream: "".join(reversed(parts))[-chars:] for stream, parts in collected.items()}


@dataclass(frozen=True)
class Ending:
    """How a job ended: its status and what to store; ``final`` fails the step without retry."""

    status: str
    exit_code: int | None = None
    error: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    final: str | None = None
    audit_action: str | None = None
    actor: str | None = None


def _rejected(runner: Runner, job_id: str, message: str) -> ResultRejected:
    """Audit the refusal of a result (in its own transaction) and return the error to raise."""
    with write_transaction():
        audit.record(
            runner.tenant_id,
            f"runner:{runner.id}",
            "runner.result_rejected",
            f"runner-job:{job_id}",
            {"reason": message},
        )
    return ResultRejected(message)


def record_result(
    runner_id: str,
    job_id: str,
    seq: int,
    payload: bytes,
    signature: bytes,
    *,
    dispatcher: Dispatcher,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> None:
    """Verify and store a job's signed result once, completing its step attempt; wake-ups after commit.

    A result for a job that already ended changes nothing (the gateway acks it
    all the same). ResultRejected (audited) for a bad signature or a payload
    that does not match the job.
    """
    now = now or utcnow()
    runner = Runner.get_or_none(Runner.id == runner_id)
    if runner is None:
        raise ResultRejected(f"unknown runner {runner_id}")
    try:
        key = bytes.fromhex(runner.identity_public_key)
        document = job_signing.verify(key, payload, signature)
    except (ValueError, job_signing.SignatureError) as error:
        raise _rejected(
            runner, job_id, f"bad signature on the result of job {job_id} ({error})"
        ) from None
    if document.get("job_id") != job_id or document.get("runner_id") != runner_id:
        raise _rejected(
            runner,
            job_id,
            f"the signed result is for job {document.get('job_id')!r} of runner "
            f"{document.get('runner_id')!r}, not job {job_id} of runner {runner_id}",
        )
    status = document.get("status")
    if status not in job_signing.RESULT_STATUSES:
        raise _rejected(runner, job_id, f"unknown result status {status!r}")
    job = RunnerJob.get_or_none(RunnerJob.id == job_id, RunnerJob.runner == runner_id)
    if job is None:
        raise _rejected(runner, job_id, f"runner {runner_id} has no job {job_id}")
    if job.status in RUNNER_JOB_ENDED:
        return
    ending = _ending_of(document, tails(job_id), payload)
    outbox.send(dispatcher, _settle(job_id, ending, now, settings))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ending_of(document: dict[str, Any], stored_tails: dict[str, str], payload: bytes) -> Ending:
    status = document["status"]
    ended_ms = _int_or_none(document.get("ended_at_ms"))
    values = {
        "stdout_tail": stored_tails["stdout"],
        "stderr_tail": stored_tails["stderr"],
        "stdout_bytes": _int_or_none(document.get("stdout_bytes")) or 0,
        "stderr_bytes": _int_or_none(document.get("stderr_bytes")) or 0,
        "stdout_capped": bool(document.get("stdout_capped")),
        "stderr_capped": bool(document.get("stderr_capped")),
        "duration_ms": _int_or_none(document.get("duration_ms")),
        "result_json": payload.decode("utf-8", "replace"),
    }
    if ended_ms is not None:
        values["ended_at"] = datetime.fromtimestamp(ended_ms / 1000, timezone.utc).replace(
            tzinfo=None
        )
    error = document.get("error")
    error = str(error)[:2000] if error else None
    if status == "refused":
        return Ending(
            "refused",
            error=error or "refused",
            values=values,
            final=f"the runner refused the job: {error or 'no reason given'}",
            audit_action="runner.job_refused",
        )
    return Ending(status, _int_or_none(document.get("exit_code")), error, values)


def _lock_job(job_id: str) -> RunnerJob | None:
    return lock_for_update(RunnerJob.select().where(RunnerJob.id == job_id)).first()


@in_write_transaction
def _settle(
    job_id: str, ending: Ending, now: datetime, settings: Settings | None = None
) -> list[Wakeup]:
    """End the job with ``ending`` unless it ended already, and complete its step attempt."""
    seen = RunnerJob.get_or_none(RunnerJob.id == job_id)
    if seen is None or seen.status in RUNNER_JOB_ENDED:
        return []
    execution = (
        progress.lock_execution(seen.tenant_id, seen.execution_id) if seen.execution_id else None
    )
    run = (
        lock_for_update(StepRun.select().where(StepRun.id == seen.step_run_id)).first()
        if seen.step_run_id
        else None
    )
    job = _lock_job(job_id)
    if job is None or job.status in RUNNER_JOB_ENDED:
        return []
    known = masking.tenant_secrets(job.tenant_id, settings)
    error = mask_secrets(ending.error, known) if ending.error else None
    values: dict[str, Any] = {
        "ended_at": now,
        **ending.values,
        "status": ending.status,
        "exit_code": ending.exit_code,
        "error": error,
    }
    if values.get("result_json"):
        values["result_json"] = mask_secrets(values["result_json"], known)
    update_row(RunnerJob, job.id, values)
    for key, value in values.items():
        setattr(job, key, value)
    if ending.audit_action:
        audit.record(
            job.tenant_id,
            ending.actor or f"runner:{job.runner_id}",
            ending.audit_action,
            f"runner-job:{job.id}",
            {"runner_id": job.runner_id, "status": ending.status, "reason": error},
            known_secrets=known,
        )
    if (
        execution is None
        or run is None
        or run.status != "running"
        or run.lease_owner != lease_owner(job.id)
        or run.attempt != job.attempt
    ):
        return []  # the attempt moved on (expired lease, cancelled execution): the job is only a record
    run.execution = execution
    outcome = _outcome(execution, run, job, ending)
    claim = progress.Claim(
        run.id, execution.id, job.tenant_id, run.step_id, job.attempt, lease_owner(job.id)
    )
    _, wakeups = progress.complete(claim, outcome, known_secrets=known, now=now, own_message=False)
    return wakeups


def job_output(job: RunnerJob) -> dict[str, Any]:
    """What a runner step's output shows of its job."""
    return {
        "exit_code": job.exit_code,
        "stdout": job.stdout_tail,
        "stderr": job.stderr_tail,
        "duration_ms": job.duration_ms,
        "runner_id": job.runner_id,
        "job_id": job.id,
        "stdout_capped": job.stdout_capped,
        "stderr_capped": job.stderr_capped,
    }


def _outcome(execution: Any, run: StepRun, job: RunnerJob, ending: Ending) -> Outcome:
    """The step attempt's outcome for the ended job, by the step's expect_exit and retry rule."""
    step = spec_of_execution(execution).step(run.step_id)
    shown = job_output(job)
    output = {**shown, "output": shown}
    stored_input = json.loads(run.input_redacted or "{}")
    if ending.final:
        return Outcome("failed", output=output, input=stored_input, error=ending.final)
    expect = list(step.params.get("expect_exit") or [0])
    runner = job.runner_id
    if ending.status in ("succeeded", "failed") and job.exit_code is not None:
        if job.exit_code in expect:
            return Outcome("succeeded", output=output, input=stored_input)
        message = f"the command exited with code {job.exit_code} on runner {runner}"
        message += f" (expected {', '.join(map(str, expect))})"
        reason: int | str | None = job.exit_code
    elif ending.status == "timed_out":
        message = f"the command timed out after {job.timeout_seconds} s on runner {runner}"
        reason = "timeout"
    elif ending.status == "lost":
        message = f"job {job.id} was lost on runner {runner}: {job.error or 'no result'}"
        reason = "lost"
    else:
        message = f"job {job.id} failed on runner {runner}: {job.error or ending.status}"
        reason = None
    return failure_outcome(
        step,
        attempt=job.attempt,
        max_attempts=run.max_attempts,
        message=message,
        reason=reason,
        output=output,
        input=stored_input,
    )


def end_unfinished(
    tenant_id: str,
    runner_id: str,
    *,
    status: str,
    message: str,
    actor: str,
    now: datetime,
    settings: Settings | None = None,
) -> list[Wakeup]:
    """End every unfinished job of the runner with ``status``; each step fails with ``message``.

    Runs inside the caller's transaction (a denial, revocation or retirement),
    which sends the returned wake-ups after it commits.
    """
    wakeups: list[Wakeup] = []
    open_jobs = RunnerJob.select(RunnerJob.id).where(
        RunnerJob.tenant == tenant_id,
        RunnerJob.runner == runner_id,
        RunnerJob.status.in_(UNFINISHED),
    )
    for (job_id,) in list(open_jobs.tuples()):
        ending = Ending(status, error=message, final=message, actor=actor)
        wakeups += _settle(job_id, ending, now, settings)
    return wakeups


def expire_overdue(
    dispatcher: Dispatcher, now: datetime | None = None, *, settings: Settings | None = None
) -> int:
    """End the jobs Core gave up on; their steps get a retryable failure. Returns how many.

    A job past ``deadline_at`` is ``timed_out`` if its runner had accepted it, else
    ``lost``; a job not yet accepted whose ``not_after`` passed can no longer be
    accepted, so it is ``lost`` at once. A job whose execution ended (cancelled,
    resolved at source) is ``cancelled``; one whose runner is denied or retired,
    ``denied``.
    """
    now = now or utcnow()
    overdue = list(
        RunnerJob.select(RunnerJob.id, RunnerJob.status, RunnerJob.runner, RunnerJob.deadline_at)
        .where(
            RunnerJob.status.in_(UNFINISHED)
            & (
                (RunnerJob.deadline_at < now)
                | (RunnerJob.status.in_(("queued", "dispatched")) & (RunnerJob.not_after < now))
            )
        )
        .order_by(RunnerJob.deadline_at)
        .limit(EXPIRE_BATCH)
    )
    orphaned = list(
        RunnerJob.select(RunnerJob.id)
        .join(Execution, on=(RunnerJob.execution == Execution.id))
        .where(RunnerJob.status.in_(UNFINISHED), Execution.status.in_(ENDED_EXECUTION))
        .limit(EXPIRE_BATCH)
    )
    for job in overdue:
        if job.status == "accepted":
            ending = Ending("timed_out", error=f"no result from runner {job.runner_id} in time")
        elif job.deadline_at < now:
            ending = Ending("lost", error=f"runner {job.runner_id} never accepted the job")
        else:
            ending = Ending(
                "lost", error=f"runner {job.runner_id} did not accept the job before it expired"
            )
        outbox.send(dispatcher, _settle(job.id, ending, now, settings))
    # A job queued for a runner in the instant it was denied or retired (the denial
    # could not see it yet): its runner will never be let in to run it.
    shut_out = list(
        RunnerJob.select(RunnerJob.id, RunnerJob.runner)
        .join(Runner, on=(RunnerJob.runner == Runner.id))
        .join(RunnerDenial, JOIN.LEFT_OUTER, on=(RunnerDenial.runner == Runner.id))
        .where(
            RunnerJob.status.in_(UNFINISHED),
            Runner.retired_at.is_null(False) | RunnerDenial.runner.is_null(False),
        )
        .limit(EXPIRE_BATCH)
    )
    for job in orphaned:
        ending = Ending("cancelled", error="its execution ended", final="its execution ended")
        outbox.send(dispatcher, _settle(job.id, ending, now, settings))
    for job in shut_out:
        message = f"runner {job.runner_id} is denied or retired"
        ending = Ending("denied", error=message, final=message)
        outbox.send(dispatcher, _settle(job.id, ending, now, settings))
    ended = len(overdue) + len(orphaned) + len(shut_out)
    if ended:
        log.info("ended %d runner job(s) Core gave up on", ended)
    return ended
