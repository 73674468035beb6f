"""Executions: list (newest first, cursor-paged), one with its steps and approvals, retry, cancel."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, require, tenant_id
from api.schemas import StrictSchema
from shared.domain.permissions import EXECUTIONS_WRITE, READ
from shared.engine import outbox
from shared.engine.approvals import decisions_of
from shared.engine.executions import cancel_execution, retry_execution
from shared.errors import NotFound
from shared.kakao.messages import kakao_messages_by_step
from shared.models import (
    EXECUTION_STATUSES,
    Approval,
    Execution,
    StepRun,
    Workflow,
    WorkflowVersion,
)

blp = Blueprint("executions", __name__, url_prefix="/api/executions", description="Executions")


class ExecutionQuerySchema(StrictSchema):
    workflow_id = ma.fields.String()
    status = ma.fields.String(validate=ma.validate.OneOf(EXECUTION_STATUSES))
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))
    cursor = ma.fields.String(metadata={"description": "next_cursor of the previous page"})


class ExecutionSchema(ma.Schema):
    id = ma.fields.String(required=True)
    workflow_id = ma.fields.String(required=True)
    workflow_version = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    dedupe_key = ma.fields.String(allow_none=True)
    trigger_type = ma.fields.String(required=True)
    trigger_ref = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    started_at = ma.fields.DateTime(allow_none=True)
    ended_at = ma.fields.DateTime(allow_none=True)
    error_summary = ma.fields.String(allow_none=True)


class ExecutionPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ExecutionSchema), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)


class StepRunSchema(ma.Schema):
    step_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    attempt = ma.fields.Integer(required=True)
    max_attempts = ma.fields.Integer(required=True)
    started_at = ma.fields.DateTime(allow_none=True)
    ended_at = ma.fields.DateTime(allow_none=True)
    input = ma.fields.Raw()
    output = ma.fields.Raw()
    error = ma.fields.String(allow_none=True)
    kakao_messages = ma.fields.List(
        ma.fields.Dict(),
        metadata={"description": "Kakao AlimTalk messages the step sent, with delivery events"},
    )


class ApprovalViewSchema(ma.Schema):
    step_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    required_approvals = ma.fields.Integer(required=True)
    expires_at = ma.fields.DateTime(allow_none=True)
    decisions = ma.fields.List(ma.fields.Dict(), required=True)
    escalations = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        metadata={"description": "escalation rungs fired: rung, at, results"},
    )


class ExecutionDetailSchema(ExecutionSchema):
    steps = ma.fields.List(ma.fields.Nested(StepRunSchema), required=True)
    approvals = ma.fields.List(ma.fields.Nested(ApprovalViewSchema), required=True)


def execution_view(execution: Execution, workflow_key: str, version: int) -> dict[str, Any]:
    """The API's view of one execution row."""
    return {
        "id": execution.id,
        "workflow_id": workflow_key,
        "workflow_version": version,
        "status": execution.status,
        "dedupe_key": execution.dedupe_key,
        "trigger_type": execution.trigger_type,
        "trigger_ref": execution.trigger_ref,
        "created_at": execution.created_at,
        "started_at": execution.started_at,
        "ended_at": execution.ended_at,
        "error_summary": execution.error_summary,
    }


def _select() -> Any:
    return (
        Execution.for_tenant(tenant_id(), Execution, Workflow.workflow_key, WorkflowVersion.version)
        .join(Workflow, on=(Execution.workflow == Workflow.id))
        .switch(Execution)
        .join(WorkflowVersion, on=(Execution.workflow_version == WorkflowVersion.id))
    )


def _one(execution_id: str) -> dict[str, Any]:
    row = _select().where(Execution.id == execution_id).objects().first()
    if row is None:
        raise NotFound(f"execution {execution_id!r} not found")
    return execution_view(row, row.workflow_key, row.version)


@blp.route("")
class Executions(MethodView):
    @blp.arguments(ExecutionQuerySchema, location="query")
    @blp.response(200, ExecutionPageSchema)
    @require(READ)
    def get(self, query: dict[str, Any]) -> Any:
        """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        rows = _select()
        if "workflow_id" in query:
            rows = rows.where(Workflow.workflow_key == query["workflow_id"])
        if "status" in query:
            rows = rows.where(Execution.status == query["status"])
        if "cursor" in query:
            rows = rows.where(Execution.id < query["cursor"])
        page = list(rows.order_by(Execution.id.desc()).limit(query["limit"] + 1).objects())
        items = [
            execution_view(row, row.workflow_key, row.version) for row in page[: query["limit"]]
        ]
        return {
            "items": items,
            "next_cursor": items[-1]["id"] if len(page) > query["limit"] else None,
        }


@blp.route("/<string:execution_id>")
class ExecutionById(MethodView):
    @blp.response(200, ExecutionDetailSchema)
    @require(READ)
    def get(self, execution_id: str) -> Any:
        """One execution with every step run and approval."""
        view = _one(execution_id)
        runs = (
            StepRun.select().where(StepRun.execution == execution_id).order_by(StepRun.step_index)
        )
        kakao = kakao_messages_by_step(execution_id, tenant_id())
        view["steps"] = [
            {
                "step_id": run.step_id,
                "status": run.status,
                "attempt": run.attempt,
                "max_attempts": run.max_attempts,
                "started_at": run.started_at,
                "ended_at": run.ended_at,
                "input": json.loads(run.input_redacted or "{}"),
                "output": json.loads(run.output_redacted or "{}"),
                "error": run.error,
                "kakao_messages": kakao.get(run.step_id, []),
            }
            for run in runs
        ]
        view["approvals"] = [
            {
                "step_id": approval.step_id,
                "status": approval.status,
                "required_approvals": approval.required_approvals,
                "expires_at": approval.expires_at,
                "decisions": decisions_of(approval),
                "escalations": json.loads(approval.escalations_json),
            }
            for approval in Approval.select().where(Approval.execution == execution_id)
        ]
        return view


@blp.route("/<string:execution_id>/retry", methods=["POST"])
@blp.response(200, ExecutionSchema)
@require(EXECUTIONS_WRITE)
def retry(execution_id: str) -> Any:
    """Re-run a failed or timed-out execution from the step that ended it (409 otherwise)."""
    _one(execution_id)
    _, wakeups = retry_execution(execution_id, tenant_id(), actor=actor())
    outbox.send(current_app.extensions["aisopsflow.dispatcher"], wakeups)
    return _one(execution_id)


@blp.route("/<string:execution_id>/cancel", methods=["POST"])
@blp.response(200, ExecutionSchema)
@require(EXECUTIONS_WRITE)
def cancel(execution_id: str) -> Any:
    """Cancel a queued, running or waiting execution (409 once it ended)."""
    _one(execution_id)
    cancel_execution(execution_id, tenant_id(), actor=actor(), reason=f"by {actor()}")
    return _one(execution_id)
