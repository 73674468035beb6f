"""The audit log of the caller's tenant (admins only)."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import require, tenant_id
from api.schemas import StrictSchema
from shared.domain.permissions import AUDIT_READ
from shared.models import AuditLog

blp = Blueprint("audit", __name__, url_prefix="/api/audit", description="Audit log (admin)")


class AuditQuerySchema(StrictSchema):
    actor = ma.fields.String()
    action = ma.fields.String()
    since = ma.fields.NaiveDateTime(metadata={"description": "ISO 8601 UTC; rows at or after it"})
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))


class AuditRowSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    seq = ma.fields.Integer(required=True)
    actor = ma.fields.String(required=True)
    action = ma.fields.String(required=True)
    target = ma.fields.String(required=True)
    ts = ma.fields.DateTime(required=True)
    metadata = ma.fields.Function(lambda row: json.loads(row.metadata_redacted), required=True)
    row_hash = ma.fields.String(required=True)


@blp.route("")
class Audit(MethodView):
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditRowSchema(many=True))
    @require(AUDIT_READ)
    def get(self, query: dict[str, Any]) -> Any:
        """Newest first, filtered by actor, action and time."""
        rows = AuditLog.for_tenant(tenant_id())
        if "actor" in query:
            rows = rows.where(AuditLog.actor == query["actor"])
        if "action" in query:
            rows = rows.where(AuditLog.action == query["action"])
        if "since" in query:
            rows = rows.where(AuditLog.ts >= query["since"])
        return list(rows.order_by(AuditLog.seq.desc()).limit(query["limit"]))
