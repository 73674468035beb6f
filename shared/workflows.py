"""Stored workflows: upload as a new version, enable, disable, delete — each audited."""

from __future__ import annotations

from shared import audit
from shared.db import write_transaction
from shared.domain.engine_rules import ACTIVE_EXECUTION
from shared.domain.workflow_spec import DEFAULT_MAX_STEPS, SpecInvalid, parse_workflow
from shared.errors import Conflict, ValidationError
from shared.models import Execution, Workflow, WorkflowVersion, utcnow


def put_workflow(
    tenant_id: str,
    workflow_id: str,
    text: str,
    *,
    actor: str,
    max_steps: int | None = DEFAULT_MAX_STEPS,
) -> tuple[Workflow, bool, bool]:
    """Create or update from YAML; (workflow, created, changed). ValidationError lists every problem.

    More than ``max_steps`` steps (None: no limit) is one of the problems.
    """
    try:
        spec = parse_workflow(text, max_steps=max_steps)
    except SpecInvalid as invalid:
        problems = [
            {
                "path": problem.path,
                "line": problem.line,
                "column": problem.column,
                "message": problem.message,
            }
            for problem in invalid.problems
        ]
        summary = "; ".join(problem.describe() for problem in invalid.problems[:5])
        raise ValidationError(
            f"workflow YAML is invalid: {summary}", errors={"yaml": problems}
        ) from None
    if spec.id != workflow_id:
        raise ValidationError(
            f"the YAML id {spec.id!r} does not match the path id {workflow_id!r}",
            errors={
                "yaml": [
                    {
                        "path": "id",
                        "line": None,
                        "column": None,
                        "message": f"must equal {workflow_id!r}",
                    }
                ]
            },
        )
    now = utcnow()
    with write_transaction():
        workflow = Workflow.get_or_none(
            Workflow.tenant == tenant_id, Workflow.workflow_key == workflow_id
        )
        if workflow is not None and workflow.yaml == text:
            return workflow, False, False
        if workflow is None:
            workflow = Workflow.create(
                tenant=tenant_id,
                workflow_key=workflow_id,
                name=spec.name,
                yaml=text,
                enabled=spec.enabled,
                version=1,
                created_at=now,
                updated_at=now,
            )
            created = True
        else:
            workflow.version += 1
            Workflow.update(
                name=spec.name,
                yaml=text,
                enabled=spec.enabled,
                version=workflow.version,
                updated_at=now,
            ).where(Workflow.id == workflow.id).execute()
            created = False
        WorkflowVersion.create(
            tenant=tenant_id,
            workflow=workflow.id,
            version=workflow.version,
            yaml=text,
            created_at=now,
            created_by=actor,
        )
        audit.record(
            tenant_id,
            actor,
            "workflow.create" if created else "workflow.update",
            f"workflow:{workflow_id}",
            {"version": workflow.version},
        )
        return Workflow.get_by_id(workflow.id), created, True


def set_enabled(tenant_id: str, workflow_id: str, enabled: bool, *, actor: str) -> Workflow:
    """Enable or disable a workflow's triggers."""
    with write_transaction():
        workflow = Workflow.get_for_tenant(
            tenant_id, Workflow.workflow_key == workflow_id, what=f"workflow {workflow_id!r}"
        )
        Workflow.update(enabled=enabled, updated_at=utcnow()).where(
            Workflow.id == workflow.id
        ).execute()
        audit.record(
            tenant_id,
            actor,
            "workflow.enable" if enabled else "workflow.disable",
            f"workflow:{workflow_id}",
        )
        return Workflow.get_by_id(workflow.id)


def delete_workflow(tenant_id: str, workflow_id: str, *, actor: str) -> None:
    """Delete a workflow with its versions and executions; Conflict while one is active."""
    with write_transaction():
        workflow = Workflow.get_for_tenant(
            tenant_id, Workflow.workflow_key == workflow_id, what=f"workflow {workflow_id!r}"
        )
        if (
            Execution.select()
            .where(Execution.workflow == workflow.id, Execution.status.in_(tuple(ACTIVE_EXECUTION)))
            .exists()
        ):
            raise Conflict(f"workflow {workflow_id!r} has active executions; cancel them first")
        Execution.delete().where(Execution.workflow == workflow.id).execute()
        WorkflowVersion.delete().where(WorkflowVersion.workflow == workflow.id).execute()
        workflow.delete_instance()
        audit.record(tenant_id, actor, "workflow.delete", f"workflow:{workflow_id}")
