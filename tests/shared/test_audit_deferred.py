"""Deferred audit rows: written together at the end of the block, in order, or not at all."""

from __future__ import annotations

import pytest

from shared import audit
from shared.db import write_transaction
from shared.models import AuditLog, Tenant


@pytest.fixture
def tenant(db):
    return Tenant.create(name="Acme", slug="acme", mode="saas")


def test_deferred_rows_keep_their_order_and_the_chain_verifies(tenant):
    other = Tenant.create(name="Other", slug="other", mode="saas")
    audit.record(tenant.id, "alice", "before", "x")

    with write_transaction(), audit.deferred():
        audit.record(tenant.id, "engine", "execution.running", "execution:1")
        audit.record(other.id, "engine", "execution.running", "execution:2")
        audit.record(tenant.id, "engine", "execution.succeeded", "execution:1")
        assert AuditLog.select().count() == 1  # nothing written until the block ends

    actions = [row.action for row in AuditLog.for_tenant(tenant.id).order_by(AuditLog.seq)]
    assert actions == ["before", "execution.running", "execution.succeeded"]
    assert [row.seq for row in AuditLog.for_tenant(tenant.id).order_by(AuditLog.seq)] == [1, 2, 3]
    assert audit.verify_all() == (4, None)


def test_a_block_that_raises_writes_no_deferred_row(tenant):
    with pytest.raises(RuntimeError), write_transaction(), audit.deferred():
        audit.record(tenant.id, "engine", "execution.running", "execution:1")
        raise RuntimeError("the change failed")

    audit.record(tenant.id, "alice", "after", "x")  # and recording works normally again

    assert [row.action for row in AuditLog.select()] == ["after"]


def test_a_nested_block_leaves_the_writing_to_the_outer_one(tenant):
    with write_transaction(), audit.deferred():
        with audit.deferred():
            audit.record(tenant.id, "engine", "inner", "x")
        assert AuditLog.select().count() == 0
        audit.record(tenant.id, "engine", "outer", "x")

    assert [row.action for row in AuditLog.select().order_by(AuditLog.seq)] == ["inner", "outer"]
