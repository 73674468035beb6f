"""Stored workflows: upload as a new version, enable, disable, delete — each audited."""

from __future__ import annotations

import peewee

from shared import audit
from shared.db import in_write_transaction, lock_for_update
from shared.domain.engine_rules import ACTIVE_EXECUTION
from shared.domain.workflow_spec import DEFAULT_MAX_STEPS, SpecInvalid, WorkflowSpec, parse_workflow
from shared.errors import Conflict, NotFound, ValidationError
from shared.models import Execution, Workflow, WorkflowVersion, utcnow


def _locked_workflow(
    tenant_id: str, workflow_id: str, *, key_change: bool = False
) -> Workflow | None:
    """The tenant's workflow, locked for the transaction so concurrent edits take turns."""
    return lock_for_update(
        Workflow.for_tenant(tenant_id).where(Workflow.workflow_key == workflow_id),
        key_change=key_change,
    ).first()


def _workflow_or_404(tenant_id: str, workflow_id: str, *, key_change: bool = False) -> Workflow:
    workflow = _locked_workflow(tenant_id, workflow_id, key_change=key_change)
    if workflow is None:
        raise NotFound(f"workflow {workflow_id!r} not found")
    return workflow


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
    try:
        return _store(tenant_id, workflow_id, text, spec, actor=actor)
    except peewee.IntegrityError:
        # Created by a concurrent upload between our look and our insert: now it is an update.
        return _store(tenant_id, workflow_id, text, spec, actor=actor)


@in_write_transaction
def _store(
    tenant_id: str, workflow_id: str, text: str, spec: WorkflowSpec, *, actor: str
) -> tuple[Workflow, bool, bool]:
    """Save ``text`` as the workflow's next version, unless it is the current one."""
    now = utcnow()
    # Locked: two edits reading the same version number would both write the next one.
    workflow = _locked_workflow(tenant_id, workflow_id)
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


@in_write_transaction
def set_enabled(tenant_id: str, workflow_id: str, enabled: bool, *, actor: str) -> Workflow:
    """Enable or disable a workflow's triggers."""
    workflow = _workflow_or_404(tenant_id, workflow_id)
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


@in_write_transaction
def delete_workflow(tenant_id: str, workflow_id: str, *, actor: str) -> None:
    """Delete a workflow with its versions and executions; Conflict while one is active."""
    # A key lock: no trigger may start an execution of it until this commits.
    workflow = _workflow_or_404(tenant_id, workflow_id, key_change=True)
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
