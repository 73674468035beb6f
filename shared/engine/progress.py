"""Claiming a step run, recording its outcome, and moving the execution on.

At-least-once delivery made safe: a worker must *claim* a step run (a lease
with an owner and an expiry, and one more attempt) before running it, and may
record an outcome only while it still holds that claim. A step already ended
is never run again; a stale or duplicate message finds nothing to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import audit
from shared.db import lock_for_update, write_transaction
from shared.domain.engine_rules import (
    ACTIVE_EXECUTION,
    ENDED_EXECUTION,
    ENDED_STEP,
    Effect,
    Outcome,
    effect_of,
    lost_attempts_allowed,
    step_time_budget_ms,
)
from shared.domain.workflow_spec import Step, WorkflowSpec
from shared.engine.outbox import Wakeup, wakeup_for
from shared.engine.specs import spec_of_execution
from shared.models import Execution, StepRun, utcnow
from shared.redaction import redact

#: Largest stored step input or output, in characters of JSON.
MAX_STORED_JSON_CHARS = 65_536
#: Audit actor of changes the engine makes on its own.
ENGINE_ACTOR = "engine"


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one attempt of one step run."""

    step_run_id: str
    execution_id: str
    tenant_id: str
    step_id: str
    attempt: int
    owner: str


def stored_json(value: Any, known_secrets: tuple[str, ...] = ()) -> str:
    """JSON of ``value`` with secrets masked, cut to MAX_STORED_JSON_CHARS."""
    text = json.dumps(redact(value, known_secrets=known_secrets), default=str, sort_keys=True)
    if len(text) <= MAX_STORED_JSON_CHARS:
        return text
    return json.dumps({"truncated": True, "preview": text[: MAX_STORED_JSON_CHARS // 2]})


def new_step_run(execution: Execution, step: Step, index: int, now: datetime) -> StepRun:
    """Create the pending run of ``step`` (due now) for ``execution``."""
    return StepRun.create(
        tenant=execution.tenant_id,
        execution=execution.id,
        step_id=step.id,
        step_index=index,
        status="pending",
        max_attempts=step.retry.max + 1,
        next_attempt_at=now,
        enqueued_at=now,
    )


def set_execution_status(
    execution: Execution,
    status: str,
    *,
    error_summary: str | None = None,
    actor: str = ENGINE_ACTOR,
) -> None:
    """Move an execution to ``status`` with its audit row (inside the caller's transaction)."""
    if execution.status == status:
        return
    now = utcnow()
    values: dict[str, Any] = {"status": status}
    if status == "running" and execution.started_at is None:
        values["started_at"] = now
    if status in ENDED_EXECUTION:
        values["ended_at"] = now
        values["error_summary"] = error_summary
    Execution.update(values).where(Execution.id == execution.id).execute()
    audit.record(
        execution.tenant_id,
        actor,
        f"execution.{status}",
        f"execution:{execution.id}",
        {"from": execution.status, "error": error_summary}
        if error_summary
        else {"from": execution.status},
    )
    for key, value in values.items():
        setattr(execution, key, value)


def _lock_step_run(step_run_id: str) -> StepRun | None:
    return lock_for_update(StepRun.select().where(StepRun.id == step_run_id)).first()


def claim(
    step_run_id: str, owner: str, *, now: datetime | None = None
) -> tuple[Claim | None, list[Wakeup]]:
    """Take one attempt of a step run; (None, to_enqueue) when there is nothing to run.

    A run already ended, held by a live lease, or belonging to an ended
    execution is not claimed. A run that lost too many attempts to dying
    workers is failed here instead, and the execution moves on.
    """
    now = now or utcnow()
    with write_transaction():
        run = _lock_step_run(step_run_id)
        if run is None or run.status in ENDED_STEP or run.status == "waiting_approval":
            return None, []
        execution = Execution.get_by_id(run.execution_id)
        if execution.status in ENDED_EXECUTION:
            StepRun.update(status="cancelled", ended_at=now, lease_owner=None).where(
                StepRun.id == run.id
            ).execute()
            return None, []
        if run.status == "running" and run.lease_expires_at and run.lease_expires_at > now:
            return None, []
        spec = spec_of_execution(execution)
        step = spec.step(run.step_id)
        lost = run.lost_attempts + (
            1 if run.status == "running" else 0
        )  # its lease expired unfinished
        if lost > lost_attempts_allowed(step.retry.max):
            StepRun.update(lost_attempts=lost).where(StepRun.id == run.id).execute()
            outcome = Outcome(
                "failed",
                error=f"gave up after {lost} lost attempt(s): the worker stopped or timed out each time",
            )
            return None, _apply(execution, spec, run, outcome, now)
        _, lease_ms = step_time_budget_ms(step.timeout_seconds)
        StepRun.update(
            status="running",
            attempt=run.attempt + 1,
            lost_attempts=lost,
            lease_owner=owner,
            lease_expires_at=now + timedelta(milliseconds=lease_ms),
            started_at=run.started_at or now,
        ).where(StepRun.id == run.id).execute()
        if execution.status == "queued":
            set_execution_status(execution, "running")
        return Claim(
            run.id, execution.id, execution.tenant_id, run.step_id, run.attempt + 1, owner
        ), []


def complete(
    claim: Claim,
    outcome: Outcome,
    *,
    known_secrets: tuple[str, ...] = (),
    now: datetime | None = None,
) -> tuple[bool, list[Wakeup]]:
    """Record ``outcome`` if ``claim`` still holds; (recorded, step runs to enqueue)."""
    now = now or utcnow()
    with write_transaction():
        run = _lock_step_run(claim.step_run_id)
        if (
            run is None
            or run.status != "running"
            or run.lease_owner != claim.owner
            or run.attempt != claim.attempt
        ):
            return False, []  # the lease expired and another worker took over: its result wins
        execution = Execution.get_by_id(run.execution_id)
        spec = spec_of_execution(execution)
        if execution.status not in ACTIVE_EXECUTION:
            StepRun.update(status="cancelled", ended_at=now, lease_owner=None).where(
                StepRun.id == run.id
            ).execute()
            return True, []
        return True, _apply(execution, spec, run, outcome, now, known_secrets=known_secrets)


def _apply(
    execution: Execution,
    spec: WorkflowSpec,
    run: StepRun,
    outcome: Outcome,
    now: datetime,
    *,
    known_secrets: tuple[str, ...] = (),
) -> list[Wakeup]:
    """Write the step's new state and the execution's; return step runs to enqueue."""
    step = spec.step(run.step_id)
    index = spec.step_index(run.step_id)
    effect: Effect = effect_of(
        step.id,
        outcome,
        continue_on_error=step.continue_on_error,
        is_last=index == len(spec.steps) - 1,
    )
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "input_redacted": stored_json(outcome.input, known_secrets),
        "error": outcome.error,
    }
    if outcome.output or outcome.status != "retry":
        values["output_redacted"] = stored_json(outcome.output, known_secrets)
    if effect.action == "retry":
        values.update(
            status="pending",
            next_attempt_at=now + timedelta(milliseconds=outcome.retry_delay_ms),
            enqueued_at=now,
        )
    else:
        values["status"] = outcome.status
        if outcome.status != "waiting_approval":
            values["ended_at"] = now
    StepRun.update(values).where(StepRun.id == run.id).execute()

    if effect.action == "retry":
        return []
    if effect.action == "wait":
        set_execution_status(execution, "waiting_approval")
        return []
    if effect.action == "end":
        if outcome.stop_after:
            _skip_rest(execution, spec, index, now)
        set_execution_status(execution, effect.execution_status, error_summary=effect.error_summary)
        return []
    if execution.status != "running":
        set_execution_status(execution, "running")
    return [schedule(execution, spec, index + 1, now)]


def schedule(execution: Execution, spec: WorkflowSpec, index: int, now: datetime) -> Wakeup:
    """Create (or reset) the pending run of step ``index``; the caller sends the wake-up after commit."""
    step = spec.steps[index]
    existing = StepRun.get_or_none(StepRun.execution == execution.id, StepRun.step_id == step.id)
    if existing is None:
        return wakeup_for(new_step_run(execution, step, index, now).id, step)
    StepRun.update(
        status="pending",
        attempt=0,
        max_attempts=step.retry.max + 1,
        next_attempt_at=now,
        enqueued_at=now,
        lease_owner=None,
        lease_expires_at=None,
        started_at=None,
        ended_at=None,
        error=None,
    ).where(StepRun.id == existing.id).execute()
    return wakeup_for(existing.id, step)


def _skip_rest(execution: Execution, spec: WorkflowSpec, index: int, now: datetime) -> None:
    """Mark the steps after ``index`` skipped (a false condition ended the execution early)."""
    for later_index in range(index + 1, len(spec.steps)):
        step = spec.steps[later_index]
        run = StepRun.get_or_none(StepRun.execution == execution.id, StepRun.step_id == step.id)
        if run is None:
            StepRun.create(
                tenant=execution.tenant_id,
                execution=execution.id,
                step_id=step.id,
                step_index=later_index,
                status="skipped",
                max_attempts=1,
                ended_at=now,
            )


def release(claim: Claim) -> None:
    """Give a claimed attempt back untouched (the worker is shutting down)."""
    with write_transaction():
        StepRun.update(
            status="pending", lease_owner=None, lease_expires_at=None, attempt=StepRun.attempt - 1
        ).where(StepRun.id == claim.step_run_id, StepRun.lease_owner == claim.owner).execute()
