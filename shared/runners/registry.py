"""The registry of enrolled runners: who may connect, who is online, certificates and session tokens.

Called by the gateway (through ``asyncio.to_thread``): ``authenticate`` on every
RPC, ``mark_online``/``mark_offline`` around each ``Connect`` stream, ``touch``
every few seconds for all of a gateway's runners in one UPDATE.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared import audit, pki
from shared.db import in_write_transaction, lock_for_update
from shared.errors import AisOpsFlowError
from shared.models import (
    Runner,
    RunnerCertificate,
    RunnerDenial,
    RunnerJob,
    utcnow,
)
from shared.runner_keys import RunnerCA
from shared.runners.enrollment import new_session_token, token_hash
from shared.settings import Settings

#: RunnerRefused.code of a refusal the runner cannot fix by retrying (gRPC PERMISSION_DENIED).
PERMISSION_DENIED = "permission_denied"
#: RunnerRefused.code of credentials that do not prove who the runner is (gRPC UNAUTHENTICATED).
UNAUTHENTICATED = "unauthenticated"


class RunnerRefused(AisOpsFlowError):
    """A runner may not connect; ``code`` is PERMISSION_DENIED or UNAUTHENTICATED."""

    def __init__(self, message: str, code: str = PERMISSION_DENIED) -> None:
        super().__init__(message)
        self.code = code


def authenticate(
    tenant_id: str,
    runner_id: str,
    fingerprint: str,
    session_token: str,
    *,
    now: datetime | None = None,
) -> Runner:
    """The runner a certificate and session token prove; RunnerRefused saying why not."""
    now = now or utcnow()
    runner = Runner.get_or_none((Runner.id == runner_id) & (Runner.tenant == tenant_id))
    if runner is None:
        raise RunnerRefused(f"unknown runner {runner_id}", UNAUTHENTICATED)
    if runner.retired_at is not None:
        raise RunnerRefused(f"runner {runner_id} was retired")
    denial = RunnerDenial.get_or_none(RunnerDenial.runner == runner_id)
    if denial is not None:
        raise RunnerRefused(f"runner {runner_id} is on the denylist: {denial.reason}")
    certificate = RunnerCertificate.get_or_none(
        (RunnerCertificate.fingerprint == fingerprint) & (RunnerCertificate.runner == runner_id)
    )
    if certificate is None:
        raise RunnerRefused(f"certificate {fingerprint[:16]} is not one issued to {runner_id}")
    if certificate.revoked_at is not None:
        raise RunnerRefused(f"certificate {fingerprint[:16]} was revoked")
    if certificate.not_after <= now:
        raise RunnerRefused("certificate expired", UNAUTHENTICATED)
    if not _token_matches(runner, session_token, now):
        raise RunnerRefused(f"runner {runner_id}: bad session token", UNAUTHENTICATED)
    return runner


def _token_matches(runner: Runner, session_token: str, now: datetime) -> bool:
    if not session_token:
        return False
    presented = token_hash(session_token)
    if runner.session_token_hash and presented == runner.session_token_hash:
        return True
    return bool(
        runner.previous_token_hash
        and presented == runner.previous_token_hash
        and runner.previous_token_valid_until is not None
        and now < runner.previous_token_valid_until
    )


@in_write_transaction
def mark_online(
    runner_id: str, gateway_id: str, inventory: dict[str, Any], *, now: datetime | None = None
) -> int:
    """Record that ``gateway_id`` holds the runner's new stream; returns the stream's epoch."""
    values: dict[str, Any] = {
        Runner.status: "online",
        Runner.session_epoch: Runner.session_epoch + 1,
        Runner.gateway_id: gateway_id,
        Runner.last_seen_at: now or utcnow(),
    }
    if inventory:
        values[Runner.inventory_json] = json.dumps(inventory, sort_keys=True)
    Runner.update(values).where(Runner.id == runner_id).execute()
    return Runner.select(Runner.session_epoch).where(Runner.id == runner_id).scalar() or 0


@in_write_transaction
def mark_offline(runner_id: str, epoch: int) -> None:
    """Record a stream's end, unless a newer stream (a higher epoch) has opened since."""
    Runner.update(status="offline").where(
        (Runner.id == runner_id) & (Runner.session_epoch == epoch)
    ).execute()


def touch(runner_ids: list[str], *, now: datetime | None = None) -> int:
    """Refresh ``last_seen_at`` of online runners, in one UPDATE; returns how many rows changed."""
    if not runner_ids:
        return 0
    return _touch(list(runner_ids), now or utcnow())


@in_write_transaction
def _touch(runner_ids: list[str], now: datetime) -> int:
    return (
        Runner.update(last_seen_at=now)
        .where(Runner.id.in_(runner_ids) & (Runner.status == "online"))
        .execute()
    )


@in_write_transaction
def update_inventory(runner_id: str, inventory: dict[str, Any]) -> None:
    """Store the runner's latest inventory."""
    Runner.update(inventory_json=json.dumps(inventory, sort_keys=True)).where(
        Runner.id == runner_id
    ).execute()


@in_write_transaction
def renew(
    settings: Settings,
    ca: RunnerCA,
    runner_id: str,
    csr_pem: bytes,
    *,
    now: datetime | None = None,
) -> tuple[bytes, datetime]:
    """A new certificate for an authenticated runner's CSR: (PEM, not_after as naive UTC)."""
    now = now or utcnow()
    runner = Runner.get_by_id(runner_id)
    try:
        certificate = pki.issue_runner_certificate(
            csr_pem,
            ca.cert_pem,
            ca.key_pem,
            tenant_id=runner.tenant_id,
            runner_id=runner_id,
            lifetime=timedelta(seconds=settings.runner_cert_ttl_seconds),
        )
    except pki.CertificateError as error:
        raise RunnerRefused(f"bad CSR: {error}") from None
    fingerprint = pki.fingerprint(certificate)
    not_after = pki.not_after(certificate).replace(tzinfo=None)
    RunnerCertificate.create(
        fingerprint=fingerprint,
        tenant=runner.tenant_id,
        runner=runner_id,
        not_after=not_after,
        issued_at=now,
    )
    Runner.update(cert_fingerprint=fingerprint, cert_not_after=not_after).where(
        Runner.id == runner_id
    ).execute()
    audit.record(
        runner.tenant_id,
        f"runner:{runner_id}",
        "runner.renew",
        f"runner:{runner_id}",
        {"certificate": fingerprint, "not_after": not_after.isoformat()},
    )
    return certificate, not_after


@in_write_transaction
def rotate_token(
    runner_id: str,
    grace_seconds: int,
    *,
    keep_hash: str | None = None,
    now: datetime | None = None,
) -> str:
    """A new session token for the runner; the current one stays valid ``grace_seconds`` more.

    ``keep_hash`` names the token that stays valid instead of the current one: the
    runner came back with the rotated-out token, so the current one never reached it.
    """
    now = now or utcnow()
    token, hashed = new_session_token()
    # Read, then write plain values: MySQL evaluates SET assignments left to right with
    # the new values, so "previous = current, current = new" in one UPDATE is not portable.
    current = (
        keep_hash
        or lock_for_update(
            Runner.select(Runner.session_token_hash).where(Runner.id == runner_id)
        ).scalar()
    )
    Runner.update(
        previous_token_hash=current,
        previous_token_valid_until=now + timedelta(seconds=grace_seconds),
        session_token_hash=hashed,
        token_rotated_at=now,
    ).where(Runner.id == runner_id).execute()
    return token


def standing_refusals(
    streams: list[tuple[str, str]], *, now: datetime | None = None
) -> dict[tuple[str, str], str]:
    """Which of these (runner id, certificate fingerprint) streams must end, and why, in three queries."""
    if not streams:
        return {}
    now = now or utcnow()
    runner_ids = {runner_id for runner_id, _ in streams}
    fingerprints = {fingerprint for _, fingerprint in streams}
    retired = {
        row.id: row.retired_at
        for row in Runner.select(Runner.id, Runner.retired_at).where(Runner.id.in_(runner_ids))
    }
    denied = {
        row.runner_id: row.reason
        for row in RunnerDenial.select(RunnerDenial.runner, RunnerDenial.reason).where(
            RunnerDenial.runner.in_(runner_ids)
        )
    }
    certificates = {
        row.fingerprint: row
        for row in RunnerCertificate.select(
            RunnerCertificate.fingerprint, RunnerCertificate.revoked_at, RunnerCertificate.not_after
        ).where(RunnerCertificate.fingerprint.in_(fingerprints))
    }
    refusals: dict[tuple[str, str], str] = {}
    for runner_id, fingerprint in streams:
        certificate = certificates.get(fingerprint)
        if runner_id not in retired:
            refusals[runner_id, fingerprint] = f"runner {runner_id} was deleted"
        elif retired[runner_id] is not None:
            refusals[runner_id, fingerprint] = f"runner {runner_id} was retired"
        elif runner_id in denied:
            refusals[runner_id, fingerprint] = (
                f"runner {runner_id} is on the denylist: {denied[runner_id]}"
            )
        elif certificate is None or certificate.revoked_at is not None:
            refusals[runner_id, fingerprint] = f"certificate {fingerprint[:16]} was revoked"
        elif certificate.not_after <= now:
            refusals[runner_id, fingerprint] = "certificate expired"
    return refusals


def runners_with_queued_jobs(runner_ids: list[str]) -> set[str]:
    """Which of these runners have a job waiting to be dispatched (one query for all)."""
    if not runner_ids:
        return set()
    query = (
        RunnerJob.select(RunnerJob.runner)
        .where(RunnerJob.runner.in_(list(runner_ids)) & (RunnerJob.status == "queued"))
        .distinct()
    )
    return {row.runner_id for row in query}
