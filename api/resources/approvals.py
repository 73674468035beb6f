"""Approvals: what waits, and resolving one — by a user, or by a channel plugin with the plugin token."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, g
from flask_smorest import Blueprint

from api.auth import authenticate_request, is_plugin_call, public, require, tenant_id
from api.schemas import StrictSchema
from shared.domain.permissions import APPROVALS_RESOLVE, READ, allows
from shared.engine import outbox
from shared.engine.approvals import Approver, decisions_of, resolve
from shared.errors import Forbidden, NotFound, ValidationError
from shared.models import APPROVAL_STATUSES, Approval, Execution, Workflow

blp = Blueprint("approvals", __name__, url_prefix="/api/approvals", description="Approvals")

#: Channel -> the recipient field a plugin's actor id is matched against.
CHANNEL_ADDRESS = {
    "slack": "slack_id",
    "telegram": "telegram_id",
    "email": "email",
    "teams": "teams_id",
}


class ApprovalQuerySchema(StrictSchema):
    status = ma.fields.String(load_default="pending", validate=ma.validate.OneOf(APPROVAL_STATUSES))
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=500))


class ApprovalSchema(ma.Schema):
    execution_id = ma.fields.String(required=True)
    workflow_id = ma.fields.String(required=True)
    step_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    required_approvals = ma.fields.Integer(required=True)
    message = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    expires_at = ma.fields.DateTime(allow_none=True)
    decisions = ma.fields.List(ma.fields.Dict(), required=True)


class ResolveSchema(StrictSchema):
    decision = ma.fields.String(required=True, validate=ma.validate.OneOf(("approve", "reject")))
    comment = ma.fields.String(load_default="", validate=ma.validate.Length(max=2000))
    actor = ma.fields.String(
        metadata={"description": "plugin calls only: the person's id in the channel"}
    )
    channel = ma.fields.String(
        metadata={"description": "plugin calls only: slack, telegram, email or teams"}
    )


def _view(approval: Approval, workflow_key: str) -> dict[str, Any]:
    return {
        "execution_id": approval.execution_id,
        "workflow_id": workflow_key,
        "step_id": approval.step_id,
        "status": approval.status,
        "required_approvals": approval.required_approvals,
        "message": approval.message,
        "created_at": approval.created_at,
        "expires_at": approval.expires_at,
        "decisions": decisions_of(approval),
    }


@blp.route("", methods=["GET"])
@blp.arguments(ApprovalQuerySchema, location="query")
@blp.response(200, ApprovalSchema(many=True))
@require(READ)
def list_approvals(query: dict[str, Any]) -> Any:
    """Approvals of the tenant by status (default: pending), newest first."""
    rows = (
        Approval.for_tenant(tenant_id(), Approval, Workflow.workflow_key)
        .join(Execution, on=(Approval.execution == Execution.id))
        .join(Workflow, on=(Execution.workflow == Workflow.id))
        .where(Approval.status == query["status"])
        .order_by(Approval.id.desc())
        .limit(query["limit"])
        .objects()
    )
    return [_view(row, row.workflow_key) for row in rows]


def _approver(body: dict[str, Any], execution_id: str) -> tuple[Approver, str]:
    """Who decides, and in which tenant: a plugin vouching for a channel user, or the logged-in user."""
    if is_plugin_call():
        channel, person = body.get("channel"), body.get("actor")
        if channel not in CHANNEL_ADDRESS or not person:
            raise ValidationError(
                "a plugin must name the deciding person: actor and channel (slack, telegram, email or teams)",
                errors={
                    "json": {
                        "actor": ["required for plugin calls"],
                        "channel": ["required for plugin calls"],
                    }
                },
            )
        execution = Execution.get_or_none(Execution.id == execution_id)
        if execution is None:
            raise NotFound(f"execution {execution_id!r} not found")
        approver = Approver(
            f"{channel}:{person}",
            channel=channel,
            address_field=CHANNEL_ADDRESS[channel],
            address=person,
        )
        return approver, execution.tenant_id
    authenticate_request(lambda: None)
    user = g.session.user
    if not allows(user.role, APPROVALS_RESOLVE):
        raise Forbidden(f"role {user.role!r} may not do this (needs {APPROVALS_RESOLVE!r})")
    return Approver(user.email, user=user, channel="api"), user.tenant_id


@blp.route("/<string:execution_id>/<string:step_id>/resolve", methods=["POST"])
@blp.arguments(ResolveSchema)
@blp.response(200, ApprovalSchema)
@blp.alt_response(409, description="Already resolved; the message names the first decision")
@public
def resolve_approval(body: dict[str, Any], execution_id: str, step_id: str) -> Any:
    """Approve or reject a waiting approval step (approver/admin users, or a plugin with its token)."""
    approver, tenant = _approver(body, execution_id)
    approval, wakeups = resolve(
        tenant, execution_id, step_id, approver, body["decision"], body.get("comment", "")
    )
    outbox.send(current_app.extensions["aisopsflow.dispatcher"], wakeups)
    workflow = (
        Workflow.select(Workflow.workflow_key)
        .join(Execution, on=(Execution.workflow == Workflow.id))
        .where(Execution.id == execution_id)
        .first()
    )
    return _view(approval, workflow.workflow_key)
