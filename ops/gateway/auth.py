"""Who is calling: every gateway RPC starts by proving its runner from the peer certificate and session token.

TLS checked the certificate's chain and validity once, at the handshake; a
stream can outlive both, and a certificate can be revoked or its runner
denied, so each RPC is checked again here (and control_watch cuts open streams).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import grpc

from ops.gateway.blocking import db_call
from shared import pki
from shared.models import utcnow
from shared.runners import registry
from shared.runners.enrollment import token_hash

log = logging.getLogger(__name__)

#: Metadata key carrying the runner's session token.
TOKEN_METADATA_KEY = "x-runner-token"  # noqa: S105 - a header name, not a secret

_CODES = {
    registry.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    registry.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
}


@dataclass(frozen=True)
class Principal:
    """A runner proven by its certificate and session token."""

    tenant_id: str
    runner_id: str
    fingerprint: str
    not_after: datetime  # naive UTC, the certificate's
    #: When its session token was last rotated (naive UTC), None if never.
    token_rotated_at: datetime | None = None
    #: It proved itself with the rotated-out token: the new one never reached it.
    previous_token: bool = False
    #: SHA-256 of the token it presented (what the table stores; never the token).
    token_hash: str = ""


def peer_certificate(context: grpc.aio.ServicerContext) -> bytes | None:
    """The client certificate (PEM) TLS verified, or None."""
    pems = context.auth_context().get("x509_pem_cert") or []
    return pems[0] if pems else None


def session_token(context: grpc.aio.ServicerContext) -> str:
    """The ``x-runner-token`` metadata value ('' when absent)."""
    for key, value in context.invocation_metadata() or ():
        if key == TOKEN_METADATA_KEY:
            return value if isinstance(value, str) else value.decode()
    return ""


async def refuse(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, runner_id: str = ""
) -> None:
    """Log the refusal and end the RPC with ``code`` (raises)."""
    who = f"runner {runner_id} at {context.peer()}" if runner_id else context.peer()
    log.warning("refused %s (%s): %s", who, code.name, message)
    await context.abort(code, message)


async def authorize(context: grpc.aio.ServicerContext, *, now: datetime | None = None) -> Principal:
    """The calling runner; aborts the RPC with PERMISSION_DENIED or UNAUTHENTICATED otherwise."""
    pem = peer_certificate(context)
    if pem is None:
        await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
    try:
        name = pki.runner_name(pem)
    except pki.CertificateError as error:
        await refuse(context, grpc.StatusCode.UNAUTHENTICATED, str(error))
    fingerprint = pki.fingerprint(pem)
    not_after = pki.not_after(pem).replace(tzinfo=None)
    now = now or utcnow()
    if not_after <= now:
        await refuse(
            context, grpc.StatusCode.UNAUTHENTICATED, "certificate expired", name.runner_id
        )
    token = session_token(context)
    try:
        runner = await db_call(
            registry.authenticate,
            name.tenant_id,
            name.runner_id,
            fingerprint,
            token,
            now=now,
        )
    except registry.RunnerRefused as refusal:
        await refuse(context, _CODES[refusal.code], str(refusal), name.runner_id)
    return Principal(
        name.tenant_id,
        name.runner_id,
        fingerprint,
        not_after,
        token_rotated_at=runner.token_rotated_at,
        previous_token=token_hash(token) != runner.session_token_hash,
        token_hash=token_hash(token),
    )
