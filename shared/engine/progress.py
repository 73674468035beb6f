"""Claiming a step run, recording its outcome, and moving the execution on.

At-least-once delivery made safe: a worker must *claim* a step run (a lease
with an owner and an expiry, and one more attempt) before running it, and may
record an outcome only while it still holds that claim. A step already ended
is never run again; a stale or duplicate message finds nothing to do.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from peewee import Select

from shared import audit
from shared.db import (
    PreparedSelect,
    in_write_transaction,
    insert_row,
    lock_for_update,
    update_row,
)
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
from shared.redaction import mask_secrets, redact

#: Largest stored step input or output, in characters of JSON.
MAX_STORED_JSON_CHARS = 65_536
#: Audit actor of changes the engine makes on its own.
ENGINE_ACTOR = "engine"


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one attempt of one step run, with the rows as the claim left them."""

    step_run_id: str
    execution_id: str
    tenant_id: str
    step_id: str
    attempt: int
    owner: str
    run: StepRun | None = field(default=None, compare=False, repr=False)
    execution: Execution | None = field(default=None, compare=False, repr=False)


class InlineRunner(Protocol):
    """Supplies outcomes of pure steps (no I/O), worked out before the transaction.

    Like Kestra's flowable tasks: a step with no side effect needs no lease and no
    message of its own. The worker works out the pure steps that follow the one
    it runs, before it takes the write lock; the transaction that reaches such a
    step records the planned outcome and moves on. The worker supplies the
    runner; this module never imports worker code.
    """

    known_secrets: tuple[str, ...]

    def outcome_for(self, step: Step, attempt: int) -> Outcome | None:
        """The planned outcome of ``step``'s attempt ``attempt``, or None to send it a message."""


def stored_json(value: Any, known_secrets: tuple[str, ...] = ()) -> str:
    """JSON of ``value`` with secrets masked, cut to MAX_STORED_JSON_CHARS."""
    text = json.dumps(redact(value, known_secrets=known_secrets), default=str, sort_keys=True)
    if len(text) <= MAX_STORED_JSON_CHARS:
        return text
    return json.dumps({"truncated": True, "preview": text[: MAX_STORED_JSON_CHARS // 2]})


def stored_output(outcome: Outcome, known_secrets: tuple[str, ...] = ()) -> str:
    """The ``output_redacted`` a step run is stored with for ``outcome``."""
    return stored_json(outcome.output, known_secrets)


def masked_outcome(outcome: Outcome, known_secrets: tuple[str, ...]) -> Outcome:
    """``outcome`` with its error text masked: it is stored, summed up, audited and logged."""
    if not outcome.error or not known_secrets:
        return outcome
    return dataclasses.replace(outcome, error=mask_secrets(outcome.error, known_secrets))


def new_step_run(execution: Execution, step: Step, index: int, now: datetime) -> StepRun:
    """Create the pending run of ``step`` (due now) for ``execution``."""
    run = StepRun(
        tenant=execution.tenant_id,
        execution=execution.id,
        step_id=step.id,
        step_index=index,
        **_run_values(step, now),
    )
    insert_row(StepRun, run.__data__)
    return run


def set_execution_status(
    execution: Execution,
    status: str,
    *,
    error_summary: str | None = None,
    actor: str = ENGINE_ACTOR,
    now: datetime | None = None,
    known_secrets: tuple[str, ...] = (),
) -> None:
    """Move an execution to ``status`` with its audit row (inside the caller's transaction).

    ``known_secrets`` are masked in the summary, which viewers see in the list.
    """
    if execution.status == status:
        return
    now = now or utcnow()
    if error_summary:
        error_summary = mask_secrets(error_summary, known_secrets)
    values: dict[str, Any] = {"status": status}
    if status == "running" and execution.started_at is None:
        values["started_at"] = now
    if status in ENDED_EXECUTION:
        values["ended_at"] = now
        values["error_summary"] = error_summary
    update_row(Execution, execution.id, values)
    audit.record(
        execution.tenant_id,
        actor,
        f"execution.{status}",
        f"execution:{execution.id}",
        {"from": execution.status, "error": error_summary}
        if error_summary
        else {"from": execution.status},
        known_secrets=known_secrets,
    )
    for key, value in values.items():
        setattr(execution, key, value)


def _run_with_execution(step_run_id: str) -> Select:
    return (
        StepRun.select(StepRun, Execution)
        .join(Execution, on=(StepRun.execution == Execution.id))
        .where(StepRun.id == step_run_id)
    )


_RUN_WITH_EXECUTION = PreparedSelect(_run_with_execution)
#: The execution a step run belongs to, locked (the subquery's row is only read).
_LOCKED_EXECUTION_OF_RUN = PreparedSelect(
    lambda step_run_id: lock_for_update(
        Execution.select().where(
            Execution.id == StepRun.select(StepRun.execution).where(StepRun.id == step_run_id)
        )
    )
)
_LOCKED_RUN = PreparedSelect(
    lambda step_run_id: lock_for_update(StepRun.select().where(StepRun.id == step_run_id))
)
_LOCKED_EXECUTION = PreparedSelect(
    lambda tenant_id, execution_id: lock_for_update(
        Execution.for_tenant(tenant_id).where(Execution.id == execution_id)
    ),
    arity=2,
)


def read_step_run(step_run_id: str) -> StepRun | None:
    """The step run with its execution (``run.execution``), without a lock: to read ahead of a claim."""
    return _RUN_WITH_EXECUTION.first(step_run_id)


def lock_execution(tenant_id: str, execution_id: str) -> Execution | None:
    """The tenant's execution, locked for the transaction; None if there is none.

    The lock order every transaction keeps, so none waits in a circle: an
    execution, then its step runs, then its approvals; the audit chain's head
    comes last of all (shared.audit takes it at commit).
    """
    return _LOCKED_EXECUTION.first(tenant_id, execution_id)


def _lock_step_run(step_run_id: str) -> tuple[StepRun, Execution] | tuple[None, None]:
    """The step run and its execution, locked where the backend can: the execution first."""
    execution = _LOCKED_EXECUTION_OF_RUN.first(step_run_id)
    run = _LOCKED_RUN.first(step_run_id) if execution is not None else None
    if run is None:
        return None, None
    run.execution = execution
    return run, execution


def _cancel_run(step_run_id: str, now: datetime) -> None:
    """End a run whose execution ended under it (cancelled, or resolved at source)."""
    update_row(StepRun, step_run_id, {"status": "cancelled", "ended_at": now, "lease_owner": None})


@in_write_transaction
def claim(
    step_run_id: str,
    owner: str,
    *,
    now: datetime | None = None,
    inline: InlineRunner | None = None,
) -> tuple[Claim | None, list[Wakeup]]:
    """Take one attempt of a step run; (None, to_enqueue) when there is nothing to run.

    A run already ended, held by a live lease, or belonging to an ended
    execution is not claimed. A run that lost too many attempts to dying
    workers is failed here instead, and the execution moves on. A pure step
    whose outcome ``inline`` planned is recorded here (with the planned pure
    steps after it), so there is nothing left to run either.
    """
    now = now or utcnow()
    run, execution = _lock_step_run(step_run_id)
    if run is None or run.status in ENDED_STEP or run.status == "waiting_approval":
        return None, []
    if execution.status in ENDED_EXECUTION:
        _cancel_run(run.id, now)
        return None, []
    if run.status == "running" and run.lease_expires_at and run.lease_expires_at > now:
        return None, []
    spec = spec_of_execution(execution)
    step = spec.step(run.step_id)
    lost = run.lost_attempts + (1 if run.status == "running" else 0)  # its lease expired unfinished
    if lost > lost_attempts_allowed(step.retry.max):
        StepRun.update(lost_attempts=lost).where(StepRun.id == run.id).execute()
        outcome = Outcome(
            "failed",
            error=f"gave up after {lost} lost attempt(s): the worker stopped or timed out each time",
        )
        return None, _apply(execution, spec, run, outcome, now)
    _, lease_ms = step_time_budget_ms(step.timeout_seconds)
    held = {
        "status": "running",
        "attempt": run.attempt + 1,
        "lost_attempts": lost,
        "lease_owner": owner,
        "lease_expires_at": now + timedelta(milliseconds=lease_ms),
        "started_at": run.started_at or now,
    }
    for key, value in held.items():
        setattr(run, key, value)
    if execution.status == "queued":
        set_execution_status(execution, "running", now=now)
    planned = inline.outcome_for(step, run.attempt) if inline is not None else None
    if planned is not None:
        # No lease is written: the attempt was worked out already and is recorded now.
        return None, _apply(
            execution,
            spec,
            run,
            planned,
            now,
            known_secrets=inline.known_secrets,
            inline=inline,
            own_message=False,
            also_write=held,
        )
    update_row(StepRun, run.id, held)
    return Claim(
        run.id,
        execution.id,
        execution.tenant_id,
        run.step_id,
        run.attempt,
        owner,
        run=run,
        execution=execution,
    ), []


@in_write_transaction
def complete(
    claim: Claim,
    outcome: Outcome,
    *,
    known_secrets: tuple[str, ...] = (),
    now: datetime | None = None,
    inline: InlineRunner | None = None,
    own_message: bool = True,
) -> tuple[bool, list[Wakeup]]:
    """Record ``outcome`` if ``claim`` still holds; (recorded, step runs to enqueue).

    Pure steps that follow, whose outcomes ``inline`` planned, are recorded in the
    same transaction; the first step without a planned outcome gets a wake-up.
    ``own_message`` is False when no Dramatiq message is being handled (a runner's
    result arriving at the gateway): a retry then gets a delayed wake-up, since
    no actor will raise ``dramatiq.Retry``.
    """
    now = now or utcnow()
    run, execution = _lock_step_run(claim.step_run_id)
    if (
        run is None
        or run.status != "running"
        or run.lease_owner != claim.owner
        or run.attempt != claim.attempt
    ):
        return False, []  # the lease expired and another worker took over: its result wins
    spec = spec_of_execution(execution)
    if execution.status not in ACTIVE_EXECUTION:
        _cancel_run(run.id, now)
        return True, []
    return True, _apply(
        execution,
        spec,
        run,
        outcome,
        now,
        known_secrets=known_secrets,
        inline=inline,
        own_message=own_message,
    )


def _apply(
    execution: Execution,
    spec: WorkflowSpec,
    run: StepRun,
    outcome: Outcome,
    now: datetime,
    *,
    known_secrets: tuple[str, ...] = (),
    inline: InlineRunner | None = None,
    own_message: bool = True,
    unsaved: bool = False,
    also_write: dict[str, Any] | None = None,
) -> list[Wakeup]:
    """Write the step's new state and the execution's; return step runs to enqueue.

    ``own_message`` is False for a step run inline: no message of its own will be
    retried by Dramatiq, so a retry gets a delayed wake-up instead. ``unsaved``
    means ``run`` is not in the database yet (a pure step run inline): it is
    inserted in its final state, one statement instead of two; ``also_write``
    are columns a claim set in memory only, written here with the outcome.
    """
    outcome = masked_outcome(outcome, known_secrets)
    step = spec.step(run.step_id)
    index = spec.step_index(run.step_id)
    effect: Effect = effect_of(
        step.id,
        outcome,
        continue_on_error=step.continue_on_error,
        is_last=index == len(spec.steps) - 1,
    )
    values: dict[str, Any] = {
        **(also_write or {}),
        "lease_owner": None,
        "lease_expires_at": None,
        "input_redacted": stored_json(outcome.input, known_secrets),
        "error": outcome.error,
    }
    if outcome.output or outcome.status != "retry":
        values["output_redacted"] = stored_output(outcome, known_secrets)
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
    if unsaved:
        for key, value in values.items():
            setattr(run, key, value)
        insert_row(StepRun, run.__data__)
    else:
        update_row(StepRun, run.id, values)

    if effect.action == "retry":
        if own_message:
            return []  # the actor raises dramatiq.Retry with this delay
        return [wakeup_for(run.id, step, delay_ms=outcome.retry_delay_ms)]
    if effect.action == "wait":
        set_execution_status(execution, "waiting_approval", now=now)
        return []
    if effect.action == "end":
        if outcome.stop_after:
            _skip_rest(execution, spec, index, now)
        set_execution_status(
            execution,
            effect.execution_status,
            error_summary=effect.error_summary,
            now=now,
            known_secrets=known_secrets,
        )
        return []
    if execution.status != "running":
        set_execution_status(execution, "running", now=now)
    next_step = spec.steps[index + 1]
    planned = inline.outcome_for(next_step, 1) if inline is not None else None
    if planned is None:
        return [schedule(execution, spec, index + 1, now, first_visit=True)]
    next_run = _new_run(execution, spec, index + 1, now, status="running", attempt=1)
    return _apply(
        execution,
        spec,
        next_run,
        planned,
        now,
        known_secrets=inline.known_secrets,
        inline=inline,
        own_message=False,
        unsaved=True,
    )


def _run_values(step: Step, now: datetime, **state: Any) -> dict[str, Any]:
    """The columns of a run of ``step`` that starts over now, pending unless ``state`` says otherwise."""
    return {
        "status": "pending",
        "attempt": 0,
        "max_attempts": step.retry.max + 1,
        "next_attempt_at": now,
        "enqueued_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
        "started_at": now if state.get("status") == "running" else None,
        "ended_at": None,
        "error": None,
        **state,
    }


def _new_run(
    execution: Execution, spec: WorkflowSpec, index: int, now: datetime, **state: Any
) -> StepRun:
    """An unsaved run of step ``index`` (the caller inserts it)."""
    step = spec.steps[index]
    return StepRun(
        tenant=execution.tenant_id,
        execution=execution.id,
        step_id=step.id,
        step_index=index,
        **_run_values(step, now, **state),
    )


def schedule(
    execution: Execution,
    spec: WorkflowSpec,
    index: int,
    now: datetime,
    *,
    first_visit: bool = False,
) -> Wakeup:
    """Create (or reset) the pending run of step ``index``; the caller sends the wake-up after commit.

    ``first_visit``: the execution moves forward onto a step it never reached, so
    there is no run to reset and no need to look for one. Only a retry of the
    execution revisits a step; the unique (execution, step_id) index is the backstop.
    """
    step = spec.steps[index]
    existing = (
        None
        if first_visit
        else StepRun.get_or_none(StepRun.execution == execution.id, StepRun.step_id == step.id)
    )
    if existing is None:
        run = _new_run(execution, spec, index, now)
        insert_row(StepRun, run.__data__)
        return wakeup_for(run.id, step)
    update_row(StepRun, existing.id, _run_values(step, now))
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


@in_write_transaction
def release(claim: Claim) -> None:
    """Give a claimed attempt back untouched (the worker is shutting down)."""
    StepRun.update(
        status="pending", lease_owner=None, lease_expires_at=None, attempt=StepRun.attempt - 1
    ).where(StepRun.id == claim.step_run_id, StepRun.lease_owner == claim.owner).execute()
