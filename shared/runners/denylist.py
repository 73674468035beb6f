"""Denying runners, revoking their certificates and retiring them, each bumping the version gateways poll.

Each change, in one transaction: the row, the runner's unfinished jobs ended
(their steps fail naming the change, without retry), a bump of
``RunnerControl.version`` and an audit row. After commit the change is
published on ``signals.control_channel``; gateways also poll the version, so
a lost message only delays the cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared import audit
from shared.db import in_write_transaction, lock_for_update, update_row
from shared.dispatch import Dispatcher
from shared.engine import outbox
from shared.engine.outbox import Wakeup
from shared.models import Runner, RunnerCertificate, RunnerControl, RunnerDenial, utcnow
from shared.runners import jobs, signals
from shared.settings import Settings

#: Longest denial or revocation reason kept, in characters.
MAX_REASON_CHARS = 1000


def control_version() -> int:
    """The current version (0 before any change): what gateways poll."""
    row = RunnerControl.get_or_none(RunnerControl.id == 1)
    return row.version if row is not None else 0


def _bump() -> int:
    """Raise the control version (inside the caller's transaction); the new version."""
    row = lock_for_update(RunnerControl.select().where(RunnerControl.id == 1)).first()
    if row is None:
        # The first change ever: make the row (a concurrent first change makes it too).
        RunnerControl.insert(id=1, version=0).on_conflict_ignore().execute()
        row = lock_for_update(RunnerControl.select().where(RunnerControl.id == 1)).first()
    update_row(RunnerControl, 1, {"version": row.version + 1})
    return row.version + 1


def _runner(tenant_id: str, runner_id: str) -> Runner:
    return Runner.get_for_tenant(tenant_id, Runner.id == runner_id, what=f"runner {runner_id!r}")


@dataclass(frozen=True)
class _Change:
    version: int
    runner_ids: tuple[str, ...]
    wakeups: list[Wakeup]


def _after_commit(change: _Change, settings: Settings, dispatcher: Dispatcher) -> None:
    outbox.send(dispatcher, change.wakeups)
    signals.publish(
        settings,
        signals.control_channel(settings),
        {"version": change.version, "runner_ids": list(change.runner_ids)},
    )


@in_write_transaction
def _deny(
    tenant_id: str, runner_id: str, reason: str, actor: str, now: datetime, settings: Settings
) -> _Change:
    runner = _runner(tenant_id, runner_id)
    message = (
        f"runner {runner.id} was put on the denylist by {actor}: {reason or 'no reason given'}"
    )
    wakeups = jobs.end_unfinished(
        tenant_id,
        runner.id,
        status="denied",
        message=message,
        actor=actor,
        now=now,
        settings=settings,
    )
    existing = RunnerDenial.get_or_none(RunnerDenial.runner == runner.id)
    if existing is None:
        RunnerDenial.insert(
            tenant=tenant_id, runner=runner.id, reason=reason, created_by=actor, created_at=now
        ).execute()
    else:
        RunnerDenial.update(reason=reason, created_by=actor, created_at=now).where(
            RunnerDenial.runner == runner.id
        ).execute()
    version = _bump()
    audit.record(tenant_id, actor, "runner.denied", f"runner:{runner.id}", {"reason": reason})
    return _Change(version, (runner.id,), wakeups)


def deny(
    tenant_id: str,
    runner_id: str,
    reason: str,
    actor: str,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    now: datetime | None = None,
) -> RunnerDenial:
    """Put the tenant's runner on the denylist (again: the reason is replaced); NotFound otherwise."""
    reason = (reason or "")[:MAX_REASON_CHARS]
    change = _deny(tenant_id, runner_id, reason, actor, now or utcnow(), settings)
    _after_commit(change, settings, dispatcher)
    return RunnerDenial.get(RunnerDenial.runner == runner_id)


@in_write_transaction
def _allow(tenant_id: str, runner_id: str, actor: str) -> _Change | None:
    runner = _runner(tenant_id, runner_id)
    if not RunnerDenial.delete().where(RunnerDenial.runner == runner.id).execute():
        return None
    version = _bump()
    audit.record(tenant_id, actor, "runner.allowed", f"runner:{runner.id}")
    return _Change(version, (runner.id,), [])


def allow(
    tenant_id: str, runner_id: str, actor: str, *, settings: Settings, dispatcher: Dispatcher
) -> bool:
    """Take the tenant's runner off the denylist; False if it was not on it; NotFound if no such runner."""
    change = _allow(tenant_id, runner_id, actor)
    if change is None:
        return False
    _after_commit(change, settings, dispatcher)
    return True


def _certificate(tenant_id: str, fingerprint: str) -> RunnerCertificate:
    return RunnerCertificate.get_for_tenant(
        tenant_id,
        RunnerCertificate.fingerprint == fingerprint.lower(),
        what=f"runner certificate {fingerprint!r}",
    )


@in_write_transaction
def _revoke(
    tenant_id: str, fingerprint: str, reason: str, actor: str, now: datetime, settings: Settings
) -> _Change | None:
    certificate = _certificate(tenant_id, fingerprint)
    if certificate.revoked_at is not None:
        return None
    runner = Runner.get_by_id(certificate.runner_id)
    wakeups: list[Wakeup] = []
    if runner.cert_fingerprint == certificate.fingerprint:
        # Its newest certificate: the runner cannot connect again, so its jobs cannot end.
        # (An older one may still carry a stream being replaced: its jobs survive the cut.)
        message = (
            f"certificate {certificate.fingerprint[:16]} of runner {runner.id} was revoked "
            f"by {actor}: {reason or 'no reason given'}"
        )
        wakeups = jobs.end_unfinished(
            tenant_id,
            runner.id,
            status="denied",
            message=message,
            actor=actor,
            now=now,
            settings=settings,
        )
    update_row(
        RunnerCertificate,
        certificate.fingerprint,
        {"revoked_at": now, "revoked_by": actor, "revoke_reason": reason},
    )
    version = _bump()
    audit.record(
        tenant_id,
        actor,
        "runner.certificate_revoked",
        f"runner:{runner.id}",
        {"fingerprint": certificate.fingerprint, "reason": reason},
    )
    return _Change(version, (runner.id,), wakeups)


def revoke_certificate(
    tenant_id: str,
    fingerprint: str,
    reason: str,
    actor: str,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    now: datetime | None = None,
) -> RunnerCertificate:
    """Revoke one certificate of one of the tenant's runners by its SHA-256; NotFound otherwise."""
    reason = (reason or "")[:MAX_REASON_CHARS]
    change = _revoke(tenant_id, fingerprint, reason, actor, now or utcnow(), settings)
    if change is not None:
        _after_commit(change, settings, dispatcher)
    return _certificate(tenant_id, fingerprint)


@in_write_transaction
def _unrevoke(tenant_id: str, fingerprint: str, actor: str) -> _Change | None:
    certificate = _certificate(tenant_id, fingerprint)
    if certificate.revoked_at is None:
        return None
    update_row(
        RunnerCertificate,
        certificate.fingerprint,
        {"revoked_at": None, "revoked_by": None, "revoke_reason": None},
    )
    version = _bump()
    audit.record(
        tenant_id,
        actor,
        "runner.certificate_unrevoked",
        f"runner:{certificate.runner_id}",
        {"fingerprint": certificate.fingerprint},
    )
    return _Change(version, (certificate.runner_id,), [])


def unrevoke_certificate(
    tenant_id: str, fingerprint: str, actor: str, *, settings: Settings, dispatcher: Dispatcher
) -> bool:
    """Lift a revocation; False if the certificate was not revoked; NotFound if it is not the tenant's."""
    change = _unrevoke(tenant_id, fingerprint, actor)
    if change is None:
        return False
    _after_commit(change, settings, dispatcher)
    return True


@in_write_transaction
def _retire(
    tenant_id: str, runner_id: str, actor: str, now: datetime, settings: Settings
) -> _Change | None:
    runner = _runner(tenant_id, runner_id)
    if runner.retired_at is not None:
        return None
    message = f"runner {runner.id} was retired by {actor}"
    wakeups = jobs.end_unfinished(
        tenant_id,
        runner.id,
        status="cancelled",
        message=message,
        actor=actor,
        now=now,
        settings=settings,
    )
    update_row(Runner, runner.id, {"retired_at": now, "status": "offline"})
    version = _bump()
    audit.record(tenant_id, actor, "runner.retired", f"runner:{runner.id}")
    return _Change(version, (runner.id,), wakeups)


def retire(
    tenant_id: str,
    runner_id: str,
    actor: str,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    now: datetime | None = None,
) -> None:
    """Retire the tenant's runner for good: never selected, never let in again; NotFound otherwise."""
    change = _retire(tenant_id, runner_id, actor, now or utcnow(), settings)
    if change is not None:
        _after_commit(change, settings, dispatcher)


def denials(tenant_id: str) -> list[RunnerDenial]:
    """The tenant's denied runners, newest denial first."""
    return list(RunnerDenial.for_tenant(tenant_id).order_by(RunnerDenial.created_at.desc()))


def revocations(tenant_id: str) -> list[RunnerCertificate]:
    """The tenant's revoked certificates, newest revocation first."""
    return list(
        RunnerCertificate.for_tenant(tenant_id)
        .where(RunnerCertificate.revoked_at.is_null(False))
        .order_by(RunnerCertificate.revoked_at.desc())
    )
