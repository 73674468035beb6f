"""Tenant secrets (admins only): values go in, never come out."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, require, tenant_id
from api.schemas import StrictSchema
from shared import secrets_store
from shared.domain.permissions import SECRETS_ADMIN
from shared.models import Secret

blp = Blueprint("secrets", __name__, url_prefix="/api/secrets", description="Secrets (admin)")


class SecretValueSchema(StrictSchema):
    value = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(min=1, max=65536)
    )


class SecretInfoSchema(ma.Schema):
    """What may be shown of a secret: its key and times."""

    key = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)
    rotated_at = ma.fields.DateTime(allow_none=True)


@blp.route("")
class Secrets(MethodView):
    @blp.response(200, SecretInfoSchema(many=True))
    @require(SECRETS_ADMIN)
    def get(self) -> Any:
        """List the tenant's secret keys (never values; Core's own credentials are not listed)."""
        rows = Secret.for_tenant(
            tenant_id(), Secret.key, Secret.created_at, Secret.updated_at, Secret.rotated_at
        ).order_by(Secret.key)
        return [row for row in rows if not secrets_store.is_system_key(row.key)]


@blp.route("/<string:key>")
class SecretByKey(MethodView):
    @blp.arguments(SecretValueSchema)
    @blp.response(200, SecretInfoSchema)
    @require(SECRETS_ADMIN)
    def put(self, body: dict[str, Any], key: str) -> Any:
        """Create or replace a secret; workflows read it as ``{{ secrets.KEY }}``."""
        secrets_store.put(
            current_app.extensions["aisopsflow.keys"].get(),
            tenant_id(),
            key,
            body["value"],
            actor=actor(),
        )
        return Secret.get_for_tenant(tenant_id(), Secret.key == key, what=f"secret {key!r}")

    @blp.response(204)
    @require(SECRETS_ADMIN)
    def delete(self, key: str) -> None:
        """Delete a secret."""
        secrets_store.delete(tenant_id(), key, actor=actor())
