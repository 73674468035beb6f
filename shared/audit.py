"""Tamper-evident audit log: each tenant's rows form a SHA-256 hash chain.

``record`` must be called inside the caller's write transaction so the audit
row commits or rolls back with the change it describes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import lock_for_update
from shared.models import AuditLog, Tenant, utcnow
from shared.redaction import redact

#: prev_hash of a tenant's first row.
GENESIS_HASH = "0" * 64


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
) -> None:
    """Append one row to the tenant's chain (call inside a write transaction)."""
    record_many(tenant_id, [(actor, action, target, metadata)])


def record_many(tenant_id: str, entries: list[tuple[str, str, str, dict[str, Any] | None]]) -> None:
    """Append (actor, action, target, metadata) rows in order, in one INSERT (inside a write transaction)."""
    if not entries:
        return
    # Locking the tenant row serialises writers of one tenant on PostgreSQL and
    # MySQL; SQLite's IMMEDIATE transaction already did. The unique (tenant, seq)
    # index is the backstop either way.
    lock_for_update(Tenant.select(Tenant.id).where(Tenant.id == tenant_id)).first()
    last = (
        AuditLog.for_tenant(tenant_id, AuditLog.seq, AuditLog.row_hash)
        .order_by(AuditLog.seq.desc())
        .first()
    )
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
    AuditLog.insert_many(rows).execute()


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
