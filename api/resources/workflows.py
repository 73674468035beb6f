"""Workflows: upload YAML (each change a new version), read, enable, disable, delete."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, require, tenant_id
from api.body_checks import accepts
from shared.domain.permissions import READ, WORKFLOWS_WRITE
from shared.models import Workflow
from shared.workflows import delete_workflow, put_workflow, set_enabled

blp = Blueprint("workflows", __name__, url_prefix="/api/workflows", description="Workflows")

YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/plain")


class WorkflowSummarySchema(ma.Schema):
    id = ma.fields.String(required=True, attribute="workflow_key")
    name = ma.fields.String(required=True)
    enabled = ma.fields.Boolean(required=True)
    version = ma.fields.Integer(required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class WorkflowSchema(WorkflowSummarySchema):
    yaml = ma.fields.String(required=True)


class WorkflowPutResultSchema(WorkflowSchema):
    created = ma.fields.Boolean(
        required=True, metadata={"description": "true when this PUT created the workflow"}
    )
    changed = ma.fields.Boolean(
        required=True,
        metadata={"description": "false when the YAML was identical (no new version)"},
    )


def _get(workflow_id: str) -> Workflow:
    return Workflow.get_for_tenant(
        tenant_id(), Workflow.workflow_key == workflow_id, what=f"workflow {workflow_id!r}"
    )


@blp.route("")
class Workflows(MethodView):
    @blp.response(200, WorkflowSummarySchema(many=True))
    @require(READ)
    def get(self) -> Any:
        """List the tenant's workflows."""
        return list(Workflow.for_tenant(tenant_id()).order_by(Workflow.workflow_key))


@blp.route("/<string:workflow_id>")
class WorkflowById(MethodView):
    @blp.response(200, WorkflowSchema)
    @require(READ)
    def get(self, workflow_id: str) -> Any:
        """One workflow with its current YAML and version."""
        return _get(workflow_id)

    @blp.doc(
        requestBody={
            "required": True,
            "content": {kind: {"schema": {"type": "string"}} for kind in YAML_TYPES},
            "description": "The workflow YAML; its `id` must equal the path id.",
        }
    )
    @blp.response(200, WorkflowPutResultSchema)
    @blp.alt_response(
        422,
        description="The YAML is invalid; `errors` lists each problem with path, line and column",
    )
    @accepts(*YAML_TYPES)
    @require(WORKFLOWS_WRITE)
    def put(self, workflow_id: str) -> Any:
        """Create or update a workflow from YAML; every change is a new version."""
        text = request.get_data(cache=True).decode("utf-8", errors="replace")
        workflow, created, changed = put_workflow(
            tenant_id(),
            workflow_id,
            text,
            actor=actor(),
            max_steps=current_app.config["SETTINGS"].max_steps_per_workflow,
        )
        view = {
            name: getattr(workflow, name)
            for name in (
                "workflow_key",
                "name",
                "enabled",
                "version",
                "created_at",
                "updated_at",
                "yaml",
            )
        }
        return {**view, "created": created, "changed": changed}

    @blp.response(204)
    @require(WORKFLOWS_WRITE)
    def delete(self, workflow_id: str) -> None:
        """Delete a workflow and its history (refused while an execution is active)."""
        delete_workflow(tenant_id(), workflow_id, actor=actor())


@blp.route("/<string:workflow_id>/enable", methods=["POST"])
@blp.response(200, WorkflowSummarySchema)
@require(WORKFLOWS_WRITE)
def enable(workflow_id: str) -> Any:
    """Let triggers start executions again."""
    return set_enabled(tenant_id(), workflow_id, True, actor=actor())


@blp.route("/<string:workflow_id>/disable", methods=["POST"])
@blp.response(200, WorkflowSummarySchema)
@require(WORKFLOWS_WRITE)
def disable(workflow_id: str) -> Any:
    """Stop triggers from starting executions (running ones go on)."""
    return set_enabled(tenant_id(), workflow_id, False, actor=actor())
