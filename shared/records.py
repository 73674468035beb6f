"""Create, change and delete tenant rows, each audited in the same transaction.

The one way a resource's rows change; a unique-constraint violation becomes
Conflict (409) and a row of another tenant is NotFound (404).
"""

from __future__ import annotations

from typing import Any, TypeVar

import peewee

from shared import audit
from shared.db import write_transaction
from shared.errors import Conflict
from shared.models import TenantScoped, utcnow

Row = TypeVar("Row", bound=TenantScoped)


def _kind(model: type[TenantScoped]) -> str:
    return model._meta.table_name.rstrip("s")


def create(
    model: type[Row], tenant_id: str, values: dict[str, Any], *, actor: str, conflict: str
) -> Row:
    """Insert a row of ``model`` for ``tenant_id``; Conflict(``conflict``) if it breaks a unique rule."""
    try:
        with write_transaction():
            row = model.create(tenant=tenant_id, **values)
            audit.record(
                tenant_id, actor, f"{_kind(model)}.create", f"{_kind(model)}:{row.get_id()}", values
            )
            return row
    except peewee.IntegrityError:
        raise Conflict(conflict) from None


def update(
    model: type[Row],
    tenant_id: str,
    row_id: str,
    values: dict[str, Any],
    *,
    actor: str,
    conflict: str,
) -> Row:
    """Change fields of one row of the tenant; NotFound if it is not theirs."""
    what = f"{_kind(model)} {row_id!r}"
    try:
        with write_transaction():
            row = model.get_for_tenant(tenant_id, model._meta.primary_key == row_id, what=what)
            if values:
                if "updated_at" in model._meta.fields:
                    values = {**values, "updated_at": utcnow()}
                model.update(values).where(model._meta.primary_key == row.get_id()).execute()
                audit.record(
                    tenant_id, actor, f"{_kind(model)}.update", f"{_kind(model)}:{row_id}", values
                )
            return model.get_by_id(row.get_id())
    except peewee.IntegrityError:
        raise Conflict(conflict) from None


def delete(model: type[Row], tenant_id: str, row_id: str, *, actor: str) -> None:
    """Delete one row of the tenant (and rows that cascade from it); NotFound if not theirs."""
    with write_transaction():
        row = model.get_for_tenant(
            tenant_id, model._meta.primary_key == row_id, what=f"{_kind(model)} {row_id!r}"
        )
        row.delete_instance()
        audit.record(tenant_id, actor, f"{_kind(model)}.delete", f"{_kind(model)}:{row_id}")
