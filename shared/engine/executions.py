"""Starting (with race-free deduplication), cancelling and retrying executions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import peewee

from shared import audit
from shared.db import in_write_transaction, insert_row, write_transaction
from shared.domain.engine_rules import ACTIVE_EXECUTION, RETRYABLE_EXECUTION
from shared.engine.outbox import Wakeup, wakeup_for
from shared.engine.progress import lock_execution, new_step_run, schedule, set_execution_status
from shared.engine.specs import spec_of, spec_of_execution
from shared.errors import Conflict, NotFound
from shared.models import (
    Approval,
    Execution,
    StepRun,
    Workflow,
    WorkflowVersion,
    new_sortable_id,
    utcnow,
)

#: Attempts at inserting when a dedupe window keeps being released under us.
_DEDUPE_ATTEMPTS = 5


@dataclass(frozen=True)
class Started:
    """The execution a trigger started, or the earlier one it was deduplicated to."""

    execution: Execution
    deduplicated: bool
    wakeups: tuple[Wakeup, ...] = ()


def insert_execution(
    workflow: Workflow,
    version: WorkflowVersion,
    *,
    trigger_type: str,
    trigger_ref: str,
    context: dict[str, Any],
    dedupe_key: str | None,
    actor: str,
) -> Started:
    """Insert a queued execution, its first step run and audit row, inside the caller's transaction.

    Raises IntegrityError (its savepoint rolled back) when ``dedupe_key`` is taken.
    """
    spec = spec_of(version)
    now = utcnow()
    # A savepoint: on PostgreSQL a failed INSERT would otherwise poison the transaction.
    execution = Execution(
        tenant=workflow.tenant_id,
        workflow=workflow.id,
        workflow_version=version.id,
        status="queued",
        dedupe_key=dedupe_key,
        trigger_type=trigger_type,
        trigger_ref=trigger_ref[:255],
        trigger_context=json.dumps(context, default=str),
        created_at=now,
    )
    with write_transaction():
        insert_row(Execution, execution.__data__)
    run = new_step_run(execution, spec.steps[0], 0, now)
    audit.record(
        workflow.tenant_id,
        actor,
        "execution.queued",
        f"execution:{execution.id}",
        {"workflow": workflow.workflow_key, "version": workflow.version, "trigger": trigger_type},
    )
    return Started(execution, False, (wakeup_for(run.id, spec.steps[0]),))


@dataclass(frozen=True)
class NewExecution:
    """One execution to insert in a batch."""

    workflow: Workflow
    version: WorkflowVersion
    spec: Any  # WorkflowSpec of ``version``
    trigger_type: str
    trigger_ref: str
    context: dict[str, Any]
    dedupe_key: str


def insert_executions(items: list[NewExecution], *, actor: str) -> list[Started]:
    """Insert many executions at once (inside the caller's transaction); taken dedupe keys are skipped.

    Returns the ones actually inserted. The unique index still decides: rows
    whose key exists are ignored by the database, and only the ids that landed
    get step runs and audit rows.
    """
    if not items:
        return []
    now = utcnow()
    rows = [
        {
            "id": new_sortable_id("ex"),
            "tenant": item.workflow.tenant_id,
            "workflow": item.workflow.id,
            "workflow_version": item.version.id,
            "status": "queued",
            "dedupe_key": item.dedupe_key,
            "trigger_type": item.trigger_type,
            "trigger_ref": item.trigger_ref[:255],
            "trigger_context": json.dumps(item.context, default=str),
            "created_at": now,
        }
        for item in items
    ]
    Execution.insert_many(rows).on_conflict_ignore().execute()
    landed = {
        row.id
        for row in Execution.select(Execution.id).where(
            Execution.id.in_([row["id"] for row in rows])
        )
    }
    started: list[Started] = []
    runs = []
    audits: dict[str, list] = {}
    for item, row in zip(items, rows, strict=True):
        if row["id"] not in landed:
            continue
        first = item.spec.steps[0]
        run_id = new_sortable_id("sr")
        runs.append(
            {
                "id": run_id,
                "tenant": item.workflow.tenant_id,
                "execution": row["id"],
                "step_id": first.id,
                "step_index": 0,
                "status": "pending",
                "max_attempts": first.retry.max + 1,
                "next_attempt_at": now,
                "enqueued_at": now,
            }
        )
        audits.setdefault(item.workflow.tenant_id, []).append(
            (
                actor,
                "execution.queued",
                f"execution:{row['id']}",
                {
                    "workflow": item.workflow.workflow_key,
                    "version": item.workflow.version,
                    "trigger": item.trigger_type,
                },
            )
        )
        started.append(
            Started(
                Execution(**{**row, "tenant": item.workflow.tenant_id}),
                False,
                (wakeup_for(run_id, first),),
            )
        )
    if runs:
        StepRun.insert_many(runs).execute()
    for tenant_id, entries in audits.items():
        audit.record_many(tenant_id, entries)
    return started


@in_write_transaction
def _insert(workflow: Workflow, **kwargs: Any) -> Started:
    version = WorkflowVersion.get(
        WorkflowVersion.workflow == workflow.id, WorkflowVersion.version == workflow.version
    )
    return insert_execution(workflow, version, **kwargs)


@in_write_transaction
def _taken_by(
    workflow: Workflow, dedupe_key: str, dedupe_window_seconds: int | None
) -> Execution | None:
    """The execution holding ``dedupe_key``, or None once it is free (absent, or released now for being too old)."""
    existing = Execution.get_or_none(
        Execution.tenant == workflow.tenant_id,
        Execution.workflow == workflow.id,
        Execution.dedupe_key == dedupe_key,
    )
    if existing is None:
        return None
    expired = dedupe_window_seconds is not None and existing.created_at <= utcnow() - timedelta(
        seconds=dedupe_window_seconds
    )
    if not expired:
        return existing
    Execution.update(dedupe_key=None).where(
        Execution.id == existing.id, Execution.dedupe_key == dedupe_key
    ).execute()
    return None


def start_execution(
    workflow: Workflow,
    *,
    trigger_type: str,
    trigger_ref: str,
    context: dict[str, Any],
    dedupe_key: str | None,
    dedupe_window_seconds: int | None = None,
    actor: str,
) -> Started:
    """Queue a new execution of the workflow's current version, or find the one it duplicates.

    The unique (tenant, workflow, dedupe_key) index decides between racing
    triggers. With a window, a key older than it is released (a conditional
    update only one racer wins) and the key may run again. The caller sends
    ``Started.wakeups`` after this returns.
    """
    for _ in range(_DEDUPE_ATTEMPTS):
        try:
            return _insert(
                workflow,
                trigger_type=trigger_type,
                trigger_ref=trigger_ref,
                context=context,
                dedupe_key=dedupe_key,
                actor=actor,
            )
        except peewee.IntegrityError:
            if dedupe_key is None:
                raise
        # A fresh transaction: under MySQL's REPEATABLE READ the failed one could not see the winner.
        existing = _taken_by(workflow, dedupe_key, dedupe_window_seconds)
        if existing is not None:
            return Started(existing, True)
        # Free now (released, or gone between our insert and this read): try again.
    raise Conflict(
        f"could not start an execution for dedupe key {dedupe_key!r}: too much contention; retry"
    )


def _locked_execution(tenant_id: str, execution_id: str) -> Execution:
    """The tenant's execution, locked for the transaction; NotFound (404) otherwise."""
    execution = lock_execution(tenant_id, execution_id)
    if execution is None:
        raise NotFound(f"execution {execution_id!r} not found")
    return execution


@in_write_transaction
def cancel_execution(execution_id: str, tenant_id: str, *, actor: str, reason: str) -> Execution:
    """Cancel a queued, running or waiting execution; Conflict if it already ended."""
    execution = _locked_execution(tenant_id, execution_id)
    if execution.status not in ACTIVE_EXECUTION:
        raise Conflict(
            f"execution {execution_id!r} already ended as {execution.status!r}; nothing to cancel"
        )
    now = utcnow()
    StepRun.update(status="cancelled", ended_at=now, lease_owner=None).where(
        StepRun.execution == execution.id, StepRun.status.in_(("pending", "waiting_approval"))
    ).execute()
    Approval.update(status="cancelled", decided_at=now).where(
        Approval.execution == execution.id, Approval.status == "pending"
    ).execute()
    set_execution_status(execution, "cancelled", error_summary=f"cancelled: {reason}", actor=actor)
    return execution


@in_write_transaction
def retry_execution(
    execution_id: str, tenant_id: str, *, actor: str
) -> tuple[Execution, list[Wakeup]]:
    """Re-run a failed or timed-out execution from the step that ended it, keeping earlier outputs."""
    execution = _locked_execution(tenant_id, execution_id)
    if execution.status not in RETRYABLE_EXECUTION:
        raise Conflict(
            f"execution {execution_id!r} is {execution.status!r}; only failed or timed_out executions can be retried"
        )
    ended_by = (
        StepRun.select()
        .where(StepRun.execution == execution.id, StepRun.status.in_(("failed", "timed_out")))
        .order_by(StepRun.step_index.desc())
        .first()
    )
    spec = spec_of_execution(execution)
    index = ended_by.step_index if ended_by else 0
    if ended_by is not None:
        Approval.delete().where(
            Approval.execution == execution.id, Approval.step_id == ended_by.step_id
        ).execute()
    wakeup = schedule(execution, spec, index, utcnow())
    Execution.update(error_summary=None, ended_at=None).where(
        Execution.id == execution.id
    ).execute()
    execution.error_summary = None
    set_execution_status(execution, "queued", actor=actor)
    audit.record(
        tenant_id,
        actor,
        "execution.retry",
        f"execution:{execution.id}",
        {"from_step": spec.steps[index].id},
    )
    return execution, [wakeup]
