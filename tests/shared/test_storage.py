"""Storage on every backend: schema, migrations, and the invariants the database enforces."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import peewee
import pytest

from shared import audit, migrations, secrets_store
from shared.db import write_transaction
from shared.models import (
    ALL_MODELS,
    AuditLog,
    Execution,
    Group,
    GroupMember,
    Recipient,
    Secret,
    Tenant,
    User,
    Workflow,
    WorkflowVersion,
)


def make_tenant(slug: str = "acme") -> Tenant:
    return Tenant.create(name=slug.title(), slug=slug, mode="saas")


def make_workflow(tenant: Tenant, key: str = "disk-alert") -> tuple[Workflow, WorkflowVersion]:
    workflow = Workflow.create(tenant=tenant, workflow_key=key, name=key, yaml="id: x")
    version = WorkflowVersion.create(tenant=tenant, workflow=workflow, version=1, yaml="id: x")
    return workflow, version


def make_execution(
    tenant: Tenant, workflow: Workflow, version: WorkflowVersion, dedupe_key: str | None
) -> Execution:
    return Execution.create(
        tenant=tenant,
        workflow=workflow,
        workflow_version=version,
        status="queued",
        dedupe_key=dedupe_key,
        trigger_type="webhook",
    )


def test_upgrade_creates_every_table_and_is_idempotent(db):
    tables = set(db.get_tables())

    assert {model._meta.table_name for model in ALL_MODELS} <= tables
    assert migrations.current_version() == max(m.version for m in migrations.MIGRATIONS)
    assert migrations.upgrade() == []


def test_executions_are_unique_per_tenant_workflow_and_dedupe_key(db):
    tenant, other = make_tenant("acme"), make_tenant("globex")
    workflow, version = make_workflow(tenant)
    other_workflow, other_version = make_workflow(other)
    make_execution(tenant, workflow, version, "alert-42")

    with pytest.raises(peewee.IntegrityError), db.atomic():
        make_execution(tenant, workflow, version, "alert-42")

    make_execution(other, other_workflow, other_version, "alert-42")
    make_execution(tenant, workflow, version, None)
    make_execution(tenant, workflow, version, None)
    assert Execution.for_tenant(tenant.id).count() == 3


@pytest.mark.parametrize(
    "create",
    [
        pytest.param(
            lambda t: User.create(tenant=t, email="a@x.io", password_hash="h", role="superuser"),
            id="unknown-role",
        ),
        pytest.param(
            lambda t: User.create(
                tenant="t_missing", email="b@x.io", password_hash="h", role="viewer"
            ),
            id="missing-tenant",
        ),
        pytest.param(
            lambda t: Tenant.create(name="dup", slug=t.slug, mode="saas"), id="duplicate-slug"
        ),
        pytest.param(lambda t: Tenant.create(name="m", slug="m", mode="cloud"), id="unknown-mode"),
        pytest.param(
            lambda t: (
                Recipient.create(tenant=t, name="Kim") and Recipient.create(tenant=t, name="Kim")
            ),
            id="duplicate-recipient",
        ),
    ],
)
def test_database_rejects_invalid_rows(db, create):
    tenant = make_tenant()

    with pytest.raises(peewee.IntegrityError), db.atomic():
        create(tenant)


def test_execution_status_is_checked_by_the_database(db):
    tenant = make_tenant()
    workflow, version = make_workflow(tenant)
    execution = make_execution(tenant, workflow, version, None)

    with pytest.raises(peewee.IntegrityError), db.atomic():
        Execution.update(status="exploded").where(Execution.id == execution.id).execute()


def test_deleting_a_group_removes_its_memberships(db):
    tenant = make_tenant()
    group = Group.create(tenant=tenant, name="oncall")
    recipient = Recipient.create(tenant=tenant, name="Kim", phone="01012345678")
    GroupMember.create(tenant=tenant, group=group, recipient=recipient)

    group.delete_instance()

    assert GroupMember.select().count() == 0
    assert Recipient.select().count() == 1


def test_timestamps_read_back_exactly(db):
    tenant = make_tenant()
    moment = datetime(2026, 3, 8, 9, 30, 15, 123456)
    AuditLog.create(
        tenant=tenant, seq=1, actor="a", action="b", ts=moment, prev_hash="0", row_hash="1"
    )

    assert AuditLog.get().ts == moment


def test_audit_chain_verifies_and_names_an_edited_row(db):
    tenant = make_tenant()
    with write_transaction():
        for number in range(5):
            audit.record(tenant.id, "ops@acme.io", "thing.update", f"thing:{number}", {"n": number})

    assert audit.verify_all() == (5, None)

    third = AuditLog.get(AuditLog.seq == 3)
    AuditLog.update(actor="mallory").where(AuditLog.id == third.id).execute()
    checked, broken = audit.verify_all()

    assert broken is not None and broken.row_id == third.id and broken.seq == 3
    assert "edited" in broken.reason


def test_audit_chain_detects_a_deleted_row(db):
    tenant = make_tenant()
    with write_transaction():
        for number in range(4):
            audit.record(tenant.id, "ops@acme.io", "thing.update", f"thing:{number}")
    AuditLog.delete().where(AuditLog.seq == 2).execute()

    _, broken = audit.verify_all()

    assert broken is not None and broken.seq == 3 and "gap" in broken.reason


def test_concurrent_audit_writers_keep_one_unbroken_chain(db):
    tenant = make_tenant()
    errors: list[BaseException] = []

    def write_many() -> None:
        db.connect(reuse_if_open=True)  # peewee keeps one connection per thread
        try:
            for number in range(10):
                with write_transaction():
                    audit.record(tenant.id, "ops@acme.io", "thing.update", f"thing:{number}")
        except BaseException as error:  # noqa: BLE001 - surfaced by the assert below
            errors.append(error)
        finally:
            db.close()

    threads = [threading.Thread(target=write_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert audit.verify_all() == (40, None)


def test_audit_metadata_is_redacted(db):
    tenant = make_tenant()
    with write_transaction():
        audit.record(
            tenant.id, "ops", "user.update", "user:1", {"password": "hunter22", "role": "admin"}
        )

    stored = json.loads(AuditLog.get().metadata_redacted)

    assert stored == {"password": "***", "role": "admin"}


def test_secrets_are_encrypted_and_survive_key_rotation(db, make_settings, database_url):
    settings = make_settings(database_url=database_url)
    from shared.keyring import keyring, load_keys

    tenant = make_tenant()
    secrets_store.put(keyring(settings), tenant.id, "SLACK_TOKEN", "xoxb-very-secret", actor="test")
    before = Secret.get().ciphertext

    assert "xoxb-very-secret" not in before
    assert secrets_store.rotate_key(settings) == 1

    after = Secret.get()
    assert after.ciphertext != before and after.rotated_at is not None
    assert len(load_keys(settings)) == 2
    assert secrets_store.read_all(keyring(settings), tenant.id) == {
        "SLACK_TOKEN": "xoxb-very-secret"
    }
    assert audit.verify_all()[1] is None
