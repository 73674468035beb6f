"""Enrollment: a single-use token (or, re-enrolling, the runner's identity key) buys a first certificate.

The token is looked up by its SHA-256 and consumed by a conditional UPDATE
(``used_at IS NULL``), so of two enrollments racing with one token exactly one
wins on every backend. A refusal is audited in a transaction of its own: the
enrollment's transaction rolled back with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared import audit, pki
from shared.db import in_write_transaction, write_transaction
from shared.domain import job_signing
from shared.errors import AisOpsFlowError
from shared.models import (
    Runner,
    RunnerCertificate,
    RunnerDenial,
    RunnerEnrollmentToken,
    new_id,
    utcnow,
)
from shared.runner_keys import RunnerCA, load_job_signing_key
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Longest a label key or value may be, in characters.
MAX_LABEL_LENGTH = 128
#: Most labels a runner may carry.
MAX_LABELS = 64


class EnrollmentRefused(AisOpsFlowError):
    """An enrollment was refused; the message says why and holds no secret."""

    def __init__(self, message: str, *, tenant_id: str | None = None) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id


@dataclass(frozen=True)
class EnrollmentRequest:
    """What a runner sends to enroll (see EnrollRequest in ops/rpc/runner.proto)."""

    token: str
    csr_pem: bytes
    identity_public_key: bytes
    inventory: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    runner_id: str = ""
    proof: bytes = b""


@dataclass(frozen=True)
class Enrollment:
    """What an enrolled runner is told (see EnrollResponse)."""

    runner_id: str
    tenant_id: str
    certificate_pem: bytes
    ca_certificate_pem: bytes
    job_signing_public_key: bytes
    session_token: str
    not_after: datetime  # naive UTC
    gateway_address: str
    reenrolled: bool


def token_hash(token: str) -> str:
    """How a token (enrollment or session) is stored: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_token() -> tuple[str, str]:
    """A fresh session token and its stored hash."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def gateway_address(settings: Settings) -> str:
    """host:port of the mTLS gateway server, as runners reach it."""
    host = settings.resolved_gateway_host
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{settings.gateway_port}"


def merged_labels(runner_labels: dict[str, str], token_labels: dict[str, str]) -> dict[str, str]:
    """The runner's own labels overlaid by the admin's (the token's win)."""
    labels = {**runner_labels, **token_labels}
    if len(labels) > MAX_LABELS:
        raise EnrollmentRefused(f"too many labels ({len(labels)}; at most {MAX_LABELS})")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_LENGTH or len(value) > MAX_LABEL_LENGTH:
            raise EnrollmentRefused(
                f"label {key[:MAX_LABEL_LENGTH]!r}: keys must be 1-{MAX_LABEL_LENGTH} and "
                f"values at most {MAX_LABEL_LENGTH} characters"
            )
    return labels


def enroll(
    settings: Settings, ca: RunnerCA, request: EnrollmentRequest, *, now: datetime | None = None
) -> Enrollment:
    """Consume the request's token and enroll (or re-enroll) its runner; EnrollmentRefused otherwise."""
    try:
        return _enroll(settings, ca, request, now or utcnow())
    except EnrollmentRefused as refusal:
        if refusal.tenant_id:
            _audit_refusal(refusal, request.runner_id)
        raise


def _audit_refusal(refusal: EnrollmentRefused, runner_id: str) -> None:
    with write_transaction():
        audit.record(
            refusal.tenant_id or "",
            f"runner:{runner_id}" if runner_id else "runner",
            "runner.enroll_refused",
            f"runner:{runner_id}" if runner_id else "",
            {"reason": str(refusal)},
        )


def _check_request(request: EnrollmentRequest) -> None:
    if len(request.identity_public_key) != 32:
        raise EnrollmentRefused("identity_public_key must be a raw 32-byte Ed25519 key")
    try:
        job_signing.public_key_from_raw(request.identity_public_key)
    except job_signing.SignatureError as error:
        raise EnrollmentRefused(f"identity_public_key: {error}") from None


def _issue(
    settings: Settings, ca: RunnerCA, csr_pem: bytes, tenant_id: str, runner_id: str, now: datetime
) -> tuple[bytes, datetime]:
    try:
        certificate = pki.issue_runner_certificate(
            csr_pem,
            ca.cert_pem,
            ca.key_pem,
            tenant_id=tenant_id,
            runner_id=runner_id,
            lifetime=timedelta(seconds=settings.runner_cert_ttl_seconds),
        )
    except pki.CertificateError as error:
        raise EnrollmentRefused(f"bad CSR: {error}", tenant_id=tenant_id) from None
    return certificate, pki.not_after(certificate).replace(tzinfo=None)


@in_write_transaction
def _enroll(
    settings: Settings, ca: RunnerCA, request: EnrollmentRequest, now: datetime
) -> Enrollment:
    _check_request(request)
    token_row = _consume_token(request.token, now)
    tenant_id = token_row.tenant_id
    token_labels = json.loads(token_row.labels_json or "{}")
    reenrolling = bool(request.runner_id)
    if reenrolling:
        runner = _reenrolling_runner(tenant_id, request)
        labels = merged_labels(
            {**json.loads(runner.labels_json or "{}"), **request.labels}, token_labels
        )
    else:
        runner = None
        labels = merged_labels(dict(request.labels), token_labels)
    runner_id = runner.id if runner else new_id("rn")
    certificate, not_after = _issue(settings, ca, request.csr_pem, tenant_id, runner_id, now)
    fingerprint = pki.fingerprint(certificate)
    session_token, session_hash = new_session_token()
    values = {
        "labels_json": json.dumps(labels, sort_keys=True),
        "inventory_json": json.dumps(request.inventory, sort_keys=True),
        "cert_fingerprint": fingerprint,
        "cert_not_after": not_after,
        "session_token_hash": session_hash,
        "previous_token_hash": None,
        "previous_token_valid_until": None,
        "token_rotated_at": now,
    }
    if runner is None:
        Runner.create(
            id=runner_id,
            tenant=tenant_id,
            name=str(request.inventory.get("hostname") or runner_id)[:255],
            identity_public_key=request.identity_public_key.hex(),
            enrolled_at=now,
            **values,
        )
    else:
        Runner.update(**values).where(Runner.id == runner_id).execute()
    RunnerCertificate.create(
        fingerprint=fingerprint,
        tenant=tenant_id,
        runner=runner_id,
        not_after=not_after,
        issued_at=now,
    )
    RunnerEnrollmentToken.update(runner_id=runner_id).where(
        RunnerEnrollmentToken.id == token_row.id
    ).execute()
    audit.record(
        tenant_id,
        f"runner:{runner_id}",
        "runner.reenroll" if reenrolling else "runner.enroll",
        f"runner:{runner_id}",
        {"token_id": token_row.id, "certificate": fingerprint, "labels": labels},
    )
    return Enrollment(
        runner_id=runner_id,
        tenant_id=tenant_id,
        certificate_pem=certificate,
        ca_certificate_pem=ca.cert_pem,
        job_signing_public_key=job_signing.public_key_raw(load_job_signing_key(settings)),
        session_token=session_token,
        not_after=not_after,
        gateway_address=gateway_address(settings),
        reenrolled=reenrolling,
    )


def _consume_token(token: str, now: datetime) -> RunnerEnrollmentToken:
    """Mark the token used; EnrollmentRefused when it is unknown, used or expired."""
    row = RunnerEnrollmentToken.get_or_none(RunnerEnrollmentToken.token_hash == token_hash(token))
    if row is None:
        raise EnrollmentRefused("unknown enrollment token")
    if row.used_at is not None:
        raise EnrollmentRefused("enrollment token already used", tenant_id=row.tenant_id)
    if row.expires_at <= now:
        raise EnrollmentRefused("enrollment token expired", tenant_id=row.tenant_id)
    # The conditional UPDATE is what makes the token single-use under concurrency:
    # of two transactions that both read it unused, only one updates a row.
    consumed = (
        RunnerEnrollmentToken.update(used_at=now)
        .where((RunnerEnrollmentToken.id == row.id) & RunnerEnrollmentToken.used_at.is_null())
        .execute()
    )
    if consumed != 1:
        raise EnrollmentRefused("enrollment token already used", tenant_id=row.tenant_id)
    return row


def _reenrolling_runner(tenant_id: str, request: EnrollmentRequest) -> Runner:
    """The runner re-enrolling, once its identity key proved the request."""
    runner = Runner.get_or_none((Runner.id == request.runner_id) & (Runner.tenant == tenant_id))
    if runner is None:
        raise EnrollmentRefused(f"unknown runner {request.runner_id}", tenant_id=tenant_id)
    if runner.retired_at is not None:
        raise EnrollmentRefused(f"runner {runner.id} was retired", tenant_id=tenant_id)
    denial = RunnerDenial.get_or_none(RunnerDenial.runner == runner.id)
    if denial is not None:
        raise EnrollmentRefused(
            f"runner {runner.id} is on the denylist: {denial.reason}", tenant_id=tenant_id
        )
    if request.identity_public_key.hex() != runner.identity_public_key:
        raise EnrollmentRefused(
            f"runner {runner.id}: the identity key differs from the enrolled one",
            tenant_id=tenant_id,
        )
    message = job_signing.reenroll_proof_message(
        runner.id, request.token, hashlib.sha256(request.csr_pem).hexdigest()
    )
    try:
        job_signing.public_key_from_raw(bytes.fromhex(runner.identity_public_key)).verify(
            request.proof, message
        )
    except Exception:  # noqa: BLE001 - InvalidSignature or a malformed proof: both refuse
        raise EnrollmentRefused(
            f"runner {runner.id}: the re-enrollment proof does not verify", tenant_id=tenant_id
        ) from None
    return runner
