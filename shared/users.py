"""User accounts: create, change, delete, each audited in the same transaction."""

from __future__ import annotations

from typing import Any

import peewee

from shared import audit
from shared.db import lock_for_update, write_transaction
from shared.errors import Conflict, ValidationError
from shared.models import ROLES, ApiToken, User, utcnow
from shared.passwords import hash_password


def check_role(role: str) -> None:
    """Raise ValidationError unless ``role`` is a known role."""
    if role not in ROLES:
        raise ValidationError(
            f"role {role!r} is unknown: use one of {', '.join(ROLES)}",
            errors={"role": [f"Must be one of: {', '.join(ROLES)}."]},
        )


def _keep_an_admin(tenant_id: str, user: User, what: str) -> None:
    """Conflict when ``user`` is the tenant's last admin; call inside the write transaction.

    The tenant's admin rows are locked, so two admins demoting each other at once
    cannot both see the other still there.
    """
    if user.role != "admin":
        return
    admins = lock_for_update(User.for_tenant(tenant_id, User.id).where(User.role == "admin"))
    if not any(row.id != user.id for row in admins):
        raise Conflict(
            f"{user.email!r} is the tenant's last admin and cannot be {what}; "
            f"make another user admin first"
        )


def create_user(tenant_id: str, *, email: str, password: str, role: str, actor: str) -> User:
    """A new user of ``tenant_id``; Conflict when the email is already used."""
    check_role(role)
    password_hash = hash_password(password)
    email = email.strip().lower()
    try:
        with write_transaction():
            user = User.create(
                tenant=tenant_id, email=email, password_hash=password_hash, role=role
            )
            audit.record(
                tenant_id, actor, "user.create", f"user:{user.id}", {"email": email, "role": role}
            )
            return user
    except peewee.IntegrityError:
        raise Conflict(f"a user with email {email!r} already exists") from None


def update_user(tenant_id: str, user_id: str, changes: dict[str, Any], *, actor: str) -> User:
    """Change a user's role, email or password; a password change revokes their sessions.

    Conflict when it would leave the tenant without an admin.
    """
    values: dict[str, Any] = {}
    if "role" in changes:
        check_role(changes["role"])
        values["role"] = changes["role"]
    if "email" in changes:
        values["email"] = changes["email"].strip().lower()
    if "password" in changes:
        values["password_hash"] = hash_password(changes["password"])
    try:
        with write_transaction():
            user = User.get_for_tenant(tenant_id, User.id == user_id, what=f"user {user_id!r}")
            if values.get("role", "admin") != "admin":
                _keep_an_admin(tenant_id, user, f"made {values['role']}")
            if values:
                values["updated_at"] = utcnow()
                User.update(values).where(User.id == user.id).execute()
                if "password_hash" in values:
                    ApiToken.update(revoked_at=utcnow()).where(
                        ApiToken.user == user.id, ApiToken.revoked_at.is_null()
                    ).execute()
                audit.record(
                    tenant_id,
                    actor,
                    "user.update",
                    f"user:{user.id}",
                    {
                        "fields": sorted(key for key in changes if key != "password")
                        + (["password"] if "password" in changes else [])
                    },
                )
            return User.get_by_id(user.id)
    except peewee.IntegrityError:
        raise Conflict(f"a user with email {values.get('email')!r} already exists") from None


def delete_user(tenant_id: str, user_id: str, *, actor: str) -> None:
    """Delete a user and their sessions; Conflict for the tenant's last admin."""
    with write_transaction():
        user = User.get_for_tenant(tenant_id, User.id == user_id, what=f"user {user_id!r}")
        _keep_an_admin(tenant_id, user, "deleted")
        user.delete_instance(recursive=True)
        audit.record(tenant_id, actor, "user.delete", f"user:{user_id}", {"email": user.email})


def admin_emails(tenant_id: str) -> list[str]:
    """Emails of ``tenant_id``'s admins, oldest account first."""
    admins = User.for_tenant(tenant_id, User.email).where(User.role == "admin")
    return [user.email for user in admins.order_by(User.created_at, User.email)]
