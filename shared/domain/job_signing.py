"""Signed runner jobs and results: canonical payloads and Ed25519 signatures.

Core signs each job and the runner signs each result. What is signed is the
exact payload bytes carried on the wire (canonical JSON: sorted keys, no
spaces), so verifying never depends on re-encoding. Pure: no files, no
database; both Core and the runner agent import it.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: Longest a job's ``not_after`` may be ahead of its signing, in seconds.
MAX_JOB_VALIDITY_SECONDS = 300
#: Fields a job payload carries, all of them signed.
JOB_FIELDS = (
    "job_id",
    "tenant_id",
    "runner_id",
    "argv",
    "script",
    "shell",
    "env",
    "cwd",
    "timeout_seconds",
    "not_after",
    "nonce",
)
#: Fields a result payload carries, all of them signed.
RESULT_FIELDS = (
    "job_id",
    "runner_id",
    "status",
    "exit_code",
    "error",
    "started_at_ms",
    "ended_at_ms",
    "duration_ms",
    "stdout_bytes",
    "stderr_bytes",
    "stdout_capped",
    "stderr_capped",
    "last_seq",
)
#: What a runner may report for a job.
RESULT_STATUSES = ("succeeded", "failed", "timed_out", "lost", "refused")


class SignatureError(ValueError):
    """A payload whose signature does not verify, or that is not a well-formed payload."""


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: JSON with sorted keys and no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def job_payload(
    *,
    job_id: str,
    tenant_id: str,
    runner_id: str,
    argv: list[str] | None,
    script: str | None,
    shell: str | None,
    env: dict[str, str],
    cwd: str | None,
    timeout_seconds: int,
    not_after: int,
    nonce: str,
) -> bytes:
    """A job's canonical payload; ``not_after`` is unix seconds."""
    return canonical(
        {
            "job_id": job_id,
            "tenant_id": tenant_id,
            "runner_id": runner_id,
            "argv": list(argv) if argv is not None else None,
            "script": script,
            "shell": shell,
            "env": dict(env),
            "cwd": cwd,
            "timeout_seconds": int(timeout_seconds),
            "not_after": int(not_after),
            "nonce": nonce,
        }
    )


def result_payload(**fields: Any) -> bytes:
    """A result's canonical payload from RESULT_FIELDS (missing ones are null)."""
    unknown = set(fields) - set(RESULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown result fields: {sorted(unknown)}")
    return canonical({name: fields.get(name) for name in RESULT_FIELDS})


def sign(private_key: Ed25519PrivateKey, payload: bytes) -> bytes:
    """The Ed25519 signature of ``payload``."""
    return private_key.sign(payload)


def verify(
    public_key: Ed25519PublicKey | bytes, payload: bytes, signature: bytes
) -> dict[str, Any]:
    """The decoded payload if ``signature`` verifies; SignatureError otherwise."""
    key = public_key_from_raw(public_key) if isinstance(public_key, bytes) else public_key
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        raise SignatureError("bad signature") from None
    try:
        document = json.loads(payload)
    except ValueError:
        raise SignatureError("the signed payload is not JSON") from None
    if not isinstance(document, dict):
        raise SignatureError("the signed payload is not an object")
    return document


def new_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key."""
    return Ed25519PrivateKey.generate()


def private_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte private key (stored 0600 by the caller)."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def private_key_from_raw(raw: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from its raw 32 bytes."""
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its raw 32 bytes; SignatureError when malformed."""
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SignatureError("not a 32-byte Ed25519 public key") from None


def reenroll_proof_message(runner_id: str, token: str, csr_sha256_hex: str) -> bytes:
    """What a re-enrolling runner signs with its identity key (see EnrollRequest.proof)."""
    return f"reenroll\n{runner_id}\n{token}\n{csr_sha256_hex}".encode()
