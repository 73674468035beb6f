"""Tamper-evident audit log: each tenant's rows form a SHA-256 hash chain.

``record`` must be called inside the caller's write transaction so the audit
row commits or rolls back with the change it describes. The rows are appended
when that transaction is about to commit, under a lock on the tenant's chain
head (``audit_heads``): it is the last lock any transaction takes, so a
transaction holding it never waits for another, and appends cannot deadlock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee

from shared.db import (
    PreparedSelect,
    in_write_transaction,
    insert_row,
    lock_for_update,
    transaction_buffer,
    update_row,
)
from shared.models import AuditHead, AuditLog, Tenant, utcnow
from shared.redaction import redact

#: prev_hash of a tenant's first row.
GENESIS_HASH = "0" * 64

#: One audit entry: (actor, action, target, metadata).
Entry = tuple[str, str, str, dict[str, Any] | None]

#: Name of the audit rows' buffer in the open write transaction.
_BUFFER = "audit"

#: Up to this many rows are appended one INSERT each (cached SQL), more in one INSERT.
FEW_ROWS = 4

_LOCKED_HEAD = PreparedSelect(
    lambda tenant_id: lock_for_update(AuditHead.select().where(AuditHead.tenant == tenant_id))
)
#: A locking read: on MySQL's REPEATABLE READ a plain one could see an old snapshot.
_LAST_ROW = PreparedSelect(
    lambda tenant_id: lock_for_update(
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
    """Add one row to the tenant's chain, written when the caller's write transaction commits.

    ``known_secrets`` (secret values the change's text may hold, e.g. a failed
    step's) are masked in ``metadata`` now: a row cannot be scrubbed later
    without breaking the chain.
    """
    if known_secrets:
        metadata = redact(metadata or {}, known_secrets=known_secrets)
    record_many(tenant_id, [(actor, action, target, metadata)])


def record_many(tenant_id: str, entries: list[Entry]) -> None:
    """Add (actor, action, target, metadata) rows in order, written when the caller's write transaction commits.

    Rows keep their order; if the transaction rolls back, none is written.
    Outside a write transaction they are appended at once, in one of their own.
    """
    if not entries:
        return
    pending = transaction_buffer(_BUFFER, _append_pending)
    if pending is None:
        _append_now(tenant_id, entries)
        return
    pending.extend((tenant_id, entry) for entry in entries)


@in_write_transaction
def _append_now(tenant_id: str, entries: list[Entry]) -> None:
    _append(tenant_id, _redacted(entries))


def _redacted(entries: list[Entry]) -> list[tuple[str, str, str, str]]:
    """(actor, action, target, metadata as stored): worked out before the head is locked."""
    return [
        (actor, action, target, json.dumps(redact(metadata or {}), sort_keys=True, default=str))
        for actor, action, target, metadata in entries
    ]


def _append_pending(pending: list[tuple[str, Entry]]) -> None:
    """Append a transaction's rows, one chain at a time, heads locked in tenant order."""
    by_tenant: dict[str, list[Entry]] = {}
    for tenant_id, entry in pending:
        by_tenant.setdefault(tenant_id, []).append(entry)
    ready = {tenant_id: _redacted(entries) for tenant_id, entries in by_tenant.items()}
    for tenant_id in sorted(ready):
        _append(tenant_id, ready[tenant_id])


def _locked_head(tenant_id: str) -> AuditHead:
    """The tenant's chain head, locked; created from its last row on the tenant's first append."""
    head = _LOCKED_HEAD.first(tenant_id)
    if head is not None:
        return head
    last = _LAST_ROW.first(tenant_id)
    AuditHead.insert(
        tenant=tenant_id,
        seq=last.seq if last else 0,
        row_hash=last.row_hash if last else GENESIS_HASH,
    ).on_conflict_ignore().execute()
    head = _LOCKED_HEAD.first(tenant_id)
    if head is None:  # MySQL's INSERT IGNORE skips a row whose tenant does not exist
        raise peewee.IntegrityError(f"audit: no tenant {tenant_id!r} to append to")
    return head


def _append(tenant_id: str, entries: list[tuple[str, str, str, str]]) -> None:
    """Append redacted rows to the chain now (inside a write transaction), moving its head.

    The head stays locked until the commit: the less work after locking it, the
    more appends per second one tenant can take.
    """
    head = _locked_head(tenant_id)
    seq = head.seq
    prev_hash = head.row_hash
    rows = []
    for actor, action, target, metadata_redacted in entries:
        seq += 1
        ts = utcnow()
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
    else:
        # The usual case (one change, a row or two) on the engine's hot path: a
        # multi-row INSERT is generated afresh each time, a single-row one is cached.
        for row in rows:
            insert_row(AuditLog, row)
    update_row(AuditHead, tenant_id, {"seq": seq, "row_hash": prev_hash})


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
    """Check one tenant's chain, and that it reaches its recorded head; (rows checked, first break or None)."""
    # The head first: rows appended while the chain is read only extend it.
    head = AuditHead.get_or_none(AuditHead.tenant == tenant_id)
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    last = None
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
        last = row
        if head is not None and row.seq == head.seq and row.row_hash != head.row_hash:
            return checked, Break(
                tenant_id, row.id, row.seq, "differs from the chain head recorded for this seq"
            )
    if head is None:
        if checked and AuditHead.get_or_none(AuditHead.tenant == tenant_id) is None:
            return checked, Break(
                tenant_id,
                last.id,
                last.seq,
                "the chain has no recorded head (audit_heads row missing)",
            )
        return checked, None  # no head yet, or the first append created it while we read
    if expected_seq - 1 < head.seq:
        return checked, Break(
            tenant_id,
            last.id if last else 0,
            expected_seq - 1,
            f"the chain ends before its recorded head at seq {head.seq} (rows were deleted from its end)",
        )
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
