"""Tenant secrets: Fernet ciphertexts at rest, plaintext only in memory of the step that reads them."""

from __future__ import annotations

import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared import audit
from shared.db import PreparedSelect, write_transaction
from shared.errors import NotFound, SecretKeyError, ValidationError
from shared.keyring import key_file_path, load_keys, write_key_file
from shared.models import Secret, Tenant, utcnow
from shared.settings import Settings

#: A key must be usable as ``{{ secrets.NAME }}`` in a template.
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_key(key: str) -> None:
    """Raise ValidationError unless ``key`` is a valid secret name."""
    if not KEY_PATTERN.match(key):
        raise ValidationError(
            f"secret key {key!r} is invalid: use letters, digits and '_', starting with a "
            "letter or '_', at most 128 characters",
            errors={"key": ["must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$"]},
        )


def is_system_key(key: str) -> bool:
    """True for Core's own credentials (e.g. ``kakao.provider.<id>.token``).

    Their keys hold a dot, which :func:`check_key` refuses for user secrets, so the two
    never collide. Templates never see them and /api/secrets neither lists nor deletes them.
    """
    return "." in key


def put(ring: MultiFernet, tenant_id: str, key: str, value: str, *, actor: str) -> bool:
    """Create or replace a secret; True when it was created. Audited without the value."""
    check_key(key)
    return _store(ring, tenant_id, key, value, actor=actor)


def put_system(ring: MultiFernet, tenant_id: str, key: str, value: str, *, actor: str) -> bool:
    """Create or replace one of Core's own credentials (``is_system_key``); audited without the value."""
    if not is_system_key(key):
        raise ValueError(f"{key!r} is not a system key (it needs a '.')")
    return _store(ring, tenant_id, key, value, actor=actor)


def _store(ring: MultiFernet, tenant_id: str, key: str, value: str, *, actor: str) -> bool:
    ciphertext = ring.encrypt(value.encode("utf-8")).decode("ascii")
    with write_transaction():
        now = utcnow()
        updated = (
            Secret.update(ciphertext=ciphertext, updated_at=now)
            .where(Secret.tenant == tenant_id, Secret.key == key)
            .execute()
        )
        if not updated:
            Secret.create(
                tenant=tenant_id, key=key, ciphertext=ciphertext, created_at=now, updated_at=now
            )
        audit.record(
            tenant_id, actor, "secret.create" if not updated else "secret.update", f"secret:{key}"
        )
    return not updated


def delete(tenant_id: str, key: str, *, actor: str) -> None:
    """Delete a secret; NotFound when the tenant has none by that key (system keys count as none)."""
    if is_system_key(key):
        raise NotFound(f"secret {key!r} not found")
    with write_transaction():
        row = Secret.get_for_tenant(tenant_id, Secret.key == key, what=f"secret {key!r}")
        row.delete_instance()
        audit.record(tenant_id, actor, "secret.delete", f"secret:{key}")


def delete_system(tenant_id: str, key: str, *, actor: str) -> bool:
    """Delete one of Core's own credentials if there is one; True when one was deleted."""
    with write_transaction():
        deleted = Secret.delete().where(Secret.tenant == tenant_id, Secret.key == key).execute()
        if deleted:
            audit.record(tenant_id, actor, "secret.delete", f"secret:{key}")
    return bool(deleted)


def _decrypt(ring: MultiFernet, row: Secret) -> str:
    try:
        return ring.decrypt(row.ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretKeyError(
            f"secret {row.key!r} cannot be decrypted with the configured keys; "
            "was AISOPSFLOW_SECRET_KEY changed without keeping the old key?"
        ) from None


#: Read once per step message: its SQL is generated once (see shared.db.PreparedSelect).
_TENANT_SECRETS = PreparedSelect(lambda tenant_id: Secret.for_tenant(tenant_id))


def read_all(ring: MultiFernet, tenant_id: str) -> dict[str, str]:
    """Every user secret of a tenant decrypted, for template rendering inside a step.

    System keys are left out: a workflow must not be able to read, say, a provider's
    credential into an HTTP step.
    """
    return {
        row.key: _decrypt(ring, row)
        for row in _TENANT_SECRETS.all(tenant_id)
        if not is_system_key(row.key)
    }


def read_system(ring: MultiFernet, tenant_id: str, key: str) -> str | None:
    """One of Core's own credentials decrypted, or None when it is not set."""
    row = Secret.for_tenant(tenant_id).where(Secret.key == key).first()
    return None if row is None else _decrypt(ring, row)


def rotate_key(settings: Settings) -> int:
    """Add a new primary key and re-encrypt every secret of every tenant with it.

    With a key file, a fresh key is prepended to it. With AISOPSFLOW_SECRET_KEY,
    the operator puts the new key first in the variable and runs this to
    re-encrypt. Returns the number of rows re-encrypted.
    """
    keys = load_keys(settings)
    if not settings.secret_key:
        keys = [Fernet.generate_key(), *keys]
    ring = MultiFernet([Fernet(key) for key in keys])
    count = 0
    with write_transaction():
        now = utcnow()
        for row in Secret.select():
            try:
                rotated = ring.rotate(row.ciphertext.encode("ascii")).decode("ascii")
            except InvalidToken:
                raise SecretKeyError(
                    f"secret {row.key!r} of tenant {row.tenant_id!r} cannot be decrypted "
                    "with the configured keys; nothing was changed"
                ) from None
            Secret.update(ciphertext=rotated, rotated_at=now).where(Secret.id == row.id).execute()
            count += 1
        for tenant in Tenant.select(Tenant.id):
            audit.record(tenant.id, "system", "secret.rotate_key", "secrets")
        # The key file is rewritten only once every row is re-encrypted, inside
        # the transaction: a failure leaves both the rows and the file as they were.
        if not settings.secret_key:
            write_key_file(key_file_path(settings), keys)
    return count
