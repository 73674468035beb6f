"""Versioned forward migrations; ``upgrade`` applies the missing ones and is idempotent.

Rules for adding one: append a ``Migration`` with the next version number;
never edit an applied one. Migration 1 creates the tables from the models, so a
later migration that adds a column to a model must add it with
``playhouse.migrate`` only when ``database.get_columns`` does not already show it
(a fresh database got it from migration 1), and a new table with
``create_tables(..., safe=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import peewee

from shared.db import database, write_transaction
from shared.models import (
    ALL_MODELS,
    RUNNER_MODELS,
    AuditHead,
    AuditLog,
    KakaoMessage,
    KakaoProvider,
    SchemaMigration,
    Tenant,
    WebhookDelivery,
)


@dataclass(frozen=True)
class Migration:
    """One forward step of the schema."""

    version: int
    name: str
    apply: Callable[[peewee.Database], None]


def _create_core_tables(db: peewee.Database) -> None:
    db.create_tables(ALL_MODELS, safe=True)


def _create_kakao_tables(db: peewee.Database) -> None:
    # A fresh database already has them from migration 1; safe=True makes this a no-op there.
    db.create_tables([KakaoProvider, KakaoMessage], safe=True)


def _create_webhook_deliveries(db: peewee.Database) -> None:
    db.create_tables([WebhookDelivery], safe=True)


def _create_audit_heads(db: peewee.Database) -> None:
    # A fresh database has the table from migration 1; each tenant whose chain has
    # rows and no head yet gets one pointing at its last row (re-running adds none).
    db.create_tables([AuditHead], safe=True)
    headless = Tenant.select(Tenant.id).where(Tenant.id.not_in(AuditHead.select(AuditHead.tenant)))
    for tenant in headless:
        last = (
            AuditLog.for_tenant(tenant.id, AuditLog.seq, AuditLog.row_hash)
            .order_by(AuditLog.seq.desc())
            .first()
        )
        if last is None:
            continue  # its first append creates the head
        with write_transaction():
            AuditHead.insert(
                tenant=tenant.id, seq=last.seq, row_hash=last.row_hash
            ).on_conflict_ignore().execute()


def _create_runner_tables(db: peewee.Database) -> None:
    db.create_tables(RUNNER_MODELS, safe=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables", _create_core_tables),
    Migration(2, "kakao providers and messages", _create_kakao_tables),
    Migration(3, "webhook deliveries (replay protection)", _create_webhook_deliveries),
    Migration(4, "audit chain heads", _create_audit_heads),
    Migration(5, "runners, their certificates, denials and jobs", _create_runner_tables),
)


def applied_versions() -> set[int]:
    """Versions already recorded in ``schema_migrations``."""
    return {row.version for row in SchemaMigration.select(SchemaMigration.version)}


def upgrade() -> list[int]:
    """Apply every migration not yet applied, in order; return the versions applied now."""
    db = database.obj
    db.create_tables([SchemaMigration], safe=True)
    done = applied_versions()
    applied: list[int] = []
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in done:
            continue
        # DDL is not transactional on MySQL; each migration is written to be
        # safe to re-run, and the version row is recorded only once it succeeded.
        migration.apply(db)
        with write_transaction():
            SchemaMigration.insert(
                version=migration.version, name=migration.name
            ).on_conflict_ignore().execute()
        applied.append(migration.version)
    return applied


def current_version() -> int:
    """The highest applied version, 0 for an empty database."""
    versions = applied_versions()
    return max(versions) if versions else 0
