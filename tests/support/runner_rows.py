"""Runner rows for tests that play the runner: an enrolled, online runner with a test identity key,
and results signed by it (what a real agent would send through the gateway)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.db import write_transaction
from shared.domain import job_signing
from shared.models import Runner, RunnerCertificate, utcnow


def make_runner(
    tenant_id: str,
    *,
    labels: dict[str, str] | None = None,
    online: bool = True,
    name: str = "host-1",
    fingerprint: str | None = None,
) -> tuple[Runner, Ed25519PrivateKey]:
    """An enrolled runner (online unless told) and the private half of its identity key."""
    key = job_signing.new_signing_key()
    now = utcnow()
    with write_transaction():
        runner = Runner.create(
            tenant=tenant_id,
            name=name,
            labels_json=json.dumps(labels or {}),
            identity_public_key=job_signing.public_key_raw(key).hex(),
            status="online" if online else "offline",
            last_seen_at=now if online else None,
            cert_fingerprint=fingerprint,
        )
        if fingerprint:
            RunnerCertificate.create(
                tenant=tenant_id, fingerprint=fingerprint, runner=runner.id, not_after=now
            )
    return runner, key


def signed_result(
    key: Ed25519PrivateKey,
    job_id: str,
    runner_id: str,
    *,
    status: str = "succeeded",
    exit_code: int | None = 0,
    error: str | None = None,
    **extra: Any,
) -> tuple[bytes, bytes]:
    """A result payload as an agent builds it, and its signature by ``key``."""
    now_ms = int(utcnow().timestamp() * 1000)
    fields = {
        "job_id": job_id,
        "runner_id": runner_id,
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "started_at_ms": now_ms - 5,
        "ended_at_ms": now_ms,
        "duration_ms": 5,
        "stdout_bytes": 0,
        "stderr_bytes": 0,
        "stdout_capped": False,
        "stderr_capped": False,
        "last_seq": 0,
        **extra,
    }
    payload = job_signing.result_payload(**fields)
    return payload, job_signing.sign(key, payload)
