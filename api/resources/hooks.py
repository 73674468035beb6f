"""Webhook triggers: no login; saas mode names the tenant by ?tenant= or X-AisOpsFlow-Tenant."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, request
from flask_smorest import Blueprint

from api.auth import public
from api.body_checks import ANY_TYPE, accepts
from shared.domain.hook_request import parse_hook_request
from shared.engine import outbox
from shared.hooks import receive, secret_reader
from shared.tenancy import webhook_tenant

blp = Blueprint("hooks", __name__, url_prefix="/api/hooks", description="Webhook triggers")


class HookResultSchema(ma.Schema):
    execution_id = ma.fields.String(allow_none=True, required=True)
    status = ma.fields.String(allow_none=True, required=True)
    deduplicated = ma.fields.Boolean(required=True)
    resolved = ma.fields.Boolean(metadata={"description": "true when resolve_when matched"})


def _hook(workflow_id: str, path: str) -> Any:
    settings = current_app.config["SETTINGS"]
    tenant = webhook_tenant(settings, request.args, request.headers)
    hook_request = parse_hook_request(
        request.get_data(cache=True),
        request.content_type or "",
        request.headers,
        request.args.items(multi=True),
    )
    result = receive(
        tenant.id,
        workflow_id,
        path,
        hook_request,
        secret_reader(current_app.extensions["aisopsflow.keys"].get()),
    )
    if result.started is not None:
        outbox.send(current_app.extensions["aisopsflow.dispatcher"], result.started.wakeups)
    body = {
        "execution_id": result.execution_id,
        "status": result.status,
        "deduplicated": result.deduplicated,
    }
    if result.resolved:
        body["resolved"] = True
    started_now = result.started is not None and not result.deduplicated
    return body, 202 if started_now else 200


_BODY_DOC = {
    "required": False,
    "content": {ANY_TYPE: {"schema": {}}},
    "description": "JSON, form-encoded or text",
}


@blp.route("/<string:workflow_id>", methods=["POST"])
@blp.doc(requestBody=_BODY_DOC)
@blp.response(202, HookResultSchema, description="A new execution was queued")
@blp.alt_response(
    200, schema=HookResultSchema, description="Deduplicated to an earlier execution, or resolved"
)
@blp.alt_response(
    409, description="A replay of a signed request already received, or the workflow is disabled"
)
@accepts(ANY_TYPE)
@public
def post_hook(workflow_id: str) -> Any:
    """Trigger a workflow through its webhook trigger."""
    return _hook(workflow_id, "")


@blp.route("/<string:workflow_id>/<path:path>", methods=["POST"])
@blp.doc(requestBody=_BODY_DOC)
@blp.response(202, HookResultSchema, description="A new execution was queued")
@blp.alt_response(
    200, schema=HookResultSchema, description="Deduplicated to an earlier execution, or resolved"
)
@blp.alt_response(
    409, description="A replay of a signed request already received, or the workflow is disabled"
)
@accepts(ANY_TYPE)
@public
def post_hook_path(workflow_id: str, path: str) -> Any:
    """Trigger a workflow through the webhook trigger with this ``path``."""
    return _hook(workflow_id, path)
