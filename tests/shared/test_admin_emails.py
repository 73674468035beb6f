"""The admins `up` names in its login hint: one tenant's, oldest first, admins only."""

from __future__ import annotations

from datetime import timedelta

from shared.models import Tenant, User, utcnow
from shared.users import admin_emails


def test_admin_emails_of_one_tenant_oldest_first(db):
    mine = Tenant.create(name="Mine", slug="mine", mode="saas")
    other = Tenant.create(name="Other", slug="other", mode="saas")
    start = utcnow()
    for offset, (tenant, email, role) in enumerate(
        [
            (mine, "second@example.com", "admin"),
            (mine, "viewer@example.com", "viewer"),
            (other, "elsewhere@example.com", "admin"),
            (mine, "third@example.com", "admin"),
        ]
    ):
        User.create(
            tenant=tenant,
            email=email,
            password_hash="x",
            role=role,
            created_at=start + timedelta(seconds=offset + 1),
        )
    User.create(tenant=mine, email="first@example.com", password_hash="x", role="admin",
                created_at=start)  # fmt: skip

    assert admin_emails(mine.id) == ["first@example.com", "second@example.com", "third@example.com"]
    assert admin_emails(other.id) == ["elsewhere@example.com"]
    assert admin_emails(Tenant.create(name="Empty", slug="empty", mode="saas").id) == []
