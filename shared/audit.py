"""Tamper-evident audit log: each tenant's rows form a SHA-256 hash chain.

``record`` must be called inside the caller's write transaction so the audit
row commits or rolls back with the change it describes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import PreparedSelect, backend_name, insert_row, lock_for_update
from shared.models import AuditLog, Tenant, utcnow
from shared.redaction import redact

#: prev_hash of a tenant's first row.
GENESIS_HASH = "0" * 64

#: One audit entry: (actor, action, target, metadata).
Entry = tuple[str, str, str, dict[str, Any] | None]

_deferred = threading.local()

#: Up to this many rows are appended one INSERT each (cached SQL), more in one INSERT.
FEW_ROWS = 4

_CHAIN_HEAD = PreparedSelect(
    lambda tenant_id: (
        AuditLog.for_tenant(tenant_id, AuditLog.seq, AuditLog.row_hash)
        .order_by(AuditLog.seq.desc())
        .limit(1)
    )
)


def row_digest(
    *,
    tenant_id: str,
    seq: int,
    actor: str,
    action: str,
    target: str,
    ts: datetime,
    metadata_redacted: str,
    prev_hash: str,
) -> str:
    """The hash that row ``seq`` stores, over its content and the previous row's hash."""
    canonical = json.dumps(
        [
            tenant_id,
            seq,
            actor,
            action,
            target,
            ts.isoformat(timespec="microseconds"),
            metadata_redacted,
            prev_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def record(
    tenant_id: str,
    actor: str,
    action: str,
    target: str = "",
    metadata: dict[str, Any] | None = None,
    *,
    known_secrets: tuple[str, ...] = (),
) -> None:
    """Append one row to the tenant's chain (call inside a write transaction).

    ``known_secrets`` (secret values the change's text may hold, e.g. a failed
    step's) are masked in ``metadata`` now: a row cannot be scrubbed later
    without breaking the chain.
    """
    if known_secrets:
        metadata = redact(metadata or {}, known_secrets=known_secrets)
    pending: list[tuple[str, Entry]] | None = getattr(_deferred, "entries", None)
    if pending is not None:
        pending.append((tenant_id, (actor, action, target, metadata)))
        return
    record_many(tenant_id, [(actor, action, target, metadata)])


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Collect the block's ``record`` calls and append them together when it ends.

    Use inside a write transaction that may record several rows (an execution
    going queued -> running -> succeeded in one step): each append reads the
    chain's head, so one append per tenant instead of one per row saves those
    reads. Rows keep their order; if the block raises, none is written.
    """
    if getattr(_deferred, "entries", None) is not None:
        yield  # an outer block writes them
        return
    _deferred.entries = []
    try:
        yield
        entries, _deferred.entries = _deferred.entries, None
        by_tenant: dict[str, list[Entry]] = {}
        for tenant_id, entry in entries:
            by_tenant.setdefault(tenant_id, []).append(entry)
        for tenant_id, tenant_entries in by_tenant.items():
            record_many(tenant_id, tenant_entries)
    finally:
        _deferred.entries = None


def record_many(tenant_id: str, entries: list[Entry]) -> None:
    """Append (actor, action, target, metadata) rows in order, in one INSERT (inside a write transaction)."""
    if not entries:
        return
    # Locking the tenant row serialises writers of one tenant on PostgreSQL and
    # MySQL; SQLite's IMMEDIATE transaction already did. The unique (tenant, seq)
    # index is the backstop either way.
    if backend_name() != "sqlite":  # SQLite's IMMEDIATE lock already serialises writers
        lock_for_update(Tenant.select(Tenant.id).where(Tenant.id == tenant_id)).first()
    last = _CHAIN_HEAD.first(tenant_id)
    seq = last.seq if last else 0
    prev_hash = last.row_hash if last else GENESIS_HASH
    rows = []
    for actor, action, target, metadata in entries:
        seq += 1
        ts = utcnow()
        metadata_redacted = json.dumps(redact(metadata or {}), sort_keys=True, default=str)
        digest = row_digest(
            tenant_id=tenant_id,
            seq=seq,
            actor=actor,
            action=action,
            target=target,
            ts=ts,
            metadata_redacted=metadata_redacted,
            prev_hash=prev_hash,
        )
        rows.append(
            {
                "tenant": tenant_id,
                "seq": seq,
                "actor": actor,
                "action": action,
                "target": target,
                "ts": ts,
                "metadata_redacted": metadata_redacted,
                "prev_hash": prev_hash,
                "row_hash": digest,
            }
        )
        prev_hash = digest
    if len(rows) > FEW_ROWS:
        AuditLog.insert_many(rows).execute()
        return
    # The usual case (one change, a row or two) on the engine's hot path: a
    # multi-row INSERT is generated afresh each time, a single-row one is cached.
    for row in rows:
        insert_row(AuditLog, row)


@dataclass(frozen=True)
class Break:
    """The first row where a tenant's chain fails to verify."""

    tenant_id: str
    row_id: int
    seq: int
    reason: str

    def describe(self) -> str:
        """One line for the CLI."""
        return f"audit_log row id={self.row_id} (tenant {self.tenant_id}, seq {self.seq}): {self.reason}"


def verify_tenant(tenant_id: str) -> tuple[int, Break | None]:
    """Check one tenant's chain; (rows checked, first break or None)."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for row in AuditLog.for_tenant(tenant_id).order_by(AuditLog.seq):
        checked += 1
        if row.seq != expected_seq:
            return checked, Break(
                tenant_id,
                row.id,
                row.seq,
                f"sequence gap: expected seq {expected_seq} (a row was deleted)",
            )
        if row.prev_hash != expected_prev:
            return checked, Break(
                tenant_id, row.id, row.seq, "prev_hash does not match the previous row"
            )
        digest = row_digest(
            tenant_id=tenant_id,
            seq=row.seq,
            actor=row.actor,
            action=row.action,
            target=row.target,
            ts=row.ts,
            metadata_redacted=row.metadata_redacted,
            prev_hash=row.prev_hash,
        )
        if digest != row.row_hash:
            return checked, Break(
                tenant_id, row.id, row.seq, "content does not match its hash (the row was edited)"
            )
        expected_prev = row.row_hash
        expected_seq += 1
    return checked, None


def verify_all() -> tuple[int, Break | None]:
    """Check every tenant's chain; stops at the first break."""
    total = 0
    for tenant in Tenant.select(Tenant.id).order_by(Tenant.id):
        checked, broken = verify_tenant(tenant.id)
        total += checked
        if broken:
            return total, broken
    return total, None
