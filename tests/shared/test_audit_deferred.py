"""Audit rows of a write transaction: appended together when it commits, in order, or not at all."""

from __future__ import annotations

import pytest

from shared import audit
from shared.db import write_transaction
from shared.models import AuditHead, AuditLog, Tenant


@pytest.fixture
def tenant(db):
    return Tenant.create(name="Acme", slug="acme", mode="saas")


def test_rows_are_appended_at_commit_keep_their_order_and_the_chain_verifies(tenant):
    other = Tenant.create(name="Other", slug="other", mode="saas")
    audit.record(tenant.id, "alice", "before", "x")  # outside a transaction: at once

    with write_transaction():
        audit.record(tenant.id, "engine", "execution.running", "execution:1")
        audit.record(other.id, "engine", "execution.running", "execution:2")
        audit.record(tenant.id, "engine", "execution.succeeded", "execution:1")
        assert AuditLog.select().count() == 1  # nothing written until the commit

    rows = list(AuditLog.for_tenant(tenant.id).order_by(AuditLog.seq))
    assert [row.action for row in rows] == ["before", "execution.running", "execution.succeeded"]
    assert [row.seq for row in rows] == [1, 2, 3]
    head = AuditHead.get(AuditHead.tenant == tenant.id)
    assert (head.seq, head.row_hash) == (3, rows[-1].row_hash)
    assert audit.verify_all() == (4, None)


def test_a_transaction_that_raises_writes_no_audit_row(tenant):
    with pytest.raises(RuntimeError), write_transaction():
        audit.record(tenant.id, "engine", "execution.running", "execution:1")
        raise RuntimeError("the change failed")

    audit.record(tenant.id, "alice", "after", "x")  # and recording works normally again

    assert [row.action for row in AuditLog.select()] == ["after"]
    assert audit.verify_all() == (1, None)


def test_a_nested_transaction_leaves_the_writing_to_the_outer_one(tenant):
    with write_transaction():
        with write_transaction():
            audit.record(tenant.id, "engine", "inner", "x")
        assert AuditLog.select().count() == 0
        audit.record(tenant.id, "engine", "outer", "x")

    assert [row.action for row in AuditLog.select().order_by(AuditLog.seq)] == ["inner", "outer"]


def test_verify_names_rows_deleted_from_the_end_of_the_chain(tenant):
    with write_transaction():
        for number in range(4):
            audit.record(tenant.id, "ops", "thing.update", f"thing:{number}")
    AuditLog.delete().where(AuditLog.seq >= 3).execute()

    _, broken = audit.verify_all()

    assert broken is not None and broken.seq == 2 and "deleted from its end" in broken.reason


def test_the_migration_gives_an_existing_chain_its_head(tenant, db):
    from shared.migrations import upgrade
    from shared.models import SchemaMigration

    with write_transaction():
        for number in range(3):
            audit.record(tenant.id, "ops", "thing.update", f"thing:{number}")
    AuditHead.delete().execute()  # a database from before migration 3
    SchemaMigration.delete().where(SchemaMigration.version == 3).execute()

    assert upgrade() == [3]
    audit.record(tenant.id, "ops", "thing.update", "thing:3")

    head = AuditHead.get(AuditHead.tenant == tenant.id)
    assert head.seq == 4 and audit.verify_all() == (4, None)
