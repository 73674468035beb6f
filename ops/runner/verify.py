"""Whether a signed job may run here: pure checks, no I/O.

The agent looks the envelope's job id up in its journal first (a redelivery of
a job it already has is re-acknowledged, never run again); what reaches
``check_job`` is a job id the runner has never seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from shared.domain import job_signing


@dataclass(frozen=True)
class Job:
    """A verified job, ready to run."""

    job_id: str
    tenant_id: str
    runner_id: str
    argv: list[str] | None
    script: str | None
    shell: str | None
    env: dict[str, str]
    cwd: str | None
    timeout_seconds: int
    not_after: int
    nonce: str


@dataclass(frozen=True)
class Refusal:
    """Why a job was refused (the ``error`` of its ``refused`` result)."""

    reason: str
    #: The payload's nonce when the signature verified (so it can be remembered).
    nonce: str | None = None


def _iso(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def _job(document: dict[str, Any]) -> Job | None:
    """The payload as a Job, or None when a field is missing or of the wrong type."""
    try:
        argv = document["argv"]
        env = document["env"] or {}
        job = Job(
            job_id=str(document["job_id"]),
            tenant_id=str(document["tenant_id"]),
            runner_id=str(document["runner_id"]),
            argv=[str(part) for part in argv] if argv is not None else None,
            script=document["script"],
            shell=document["shell"],
            env={str(key): str(value) for key, value in dict(env).items()},
            cwd=document["cwd"],
            timeout_seconds=int(document["timeout_seconds"]),
            not_after=int(document["not_after"]),
            nonce=str(document["nonce"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if not job.argv and not job.script:
        return None
    return job


def check_job(
    envelope_job_id: str,
    payload: bytes,
    signature: bytes,
    *,
    public_key: bytes,
    runner_id: str,
    tenant_id: str,
    now_s: float,
    nonce_owner: Callable[[str], str | None],
) -> Job | Refusal:
    """The job if it is Core's, meant for this runner, unexpired and new; else why not.

    ``nonce_owner(nonce)`` returns the job id a nonce was already seen with.
    """
    try:
        document = job_signing.verify(public_key, payload, signature)
    except job_signing.SignatureError as error:
        return Refusal(str(error))
    job = _job(document)
    if job is None:
        return Refusal("malformed job payload")
    owner = nonce_owner(job.nonce)
    if owner is not None:
        return Refusal(f"replayed nonce (first seen with job {owner})")
    if job.job_id != envelope_job_id:
        return Refusal(
            f"job id mismatch: delivered as {envelope_job_id}, signed for {job.job_id}", job.nonce
        )
    if job.runner_id != runner_id:
        return Refusal(f"meant for runner {job.runner_id}", job.nonce)
    if job.tenant_id != tenant_id:
        return Refusal(f"meant for tenant {job.tenant_id}", job.nonce)
    if job.not_after < now_s:
        return Refusal(f"expired at {_iso(job.not_after)}", job.nonce)
    if job.timeout_seconds <= 0:
        return Refusal("timeout_seconds must be greater than 0", job.nonce)
    return job
