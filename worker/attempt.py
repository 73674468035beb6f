"""One attempt of one step: run its executor and turn every failure into an Outcome."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from dramatiq.middleware.time_limit import TimeLimitExceeded

from shared.domain import engine_rules
from shared.domain.engine_rules import Outcome
from shared.domain.templating import TemplateError, evaluate
from worker.step_deadline import step_deadline
from worker.steps.approval import run_approval
from worker.steps.base import StepCall, StepFailure
from worker.steps.condition import run_condition
from worker.steps.http import run_http
from worker.steps.notify import run_notify
from worker.steps.runner import run_runner

EXECUTORS: dict[str, Callable[[StepCall], Outcome]] = {
    "http": run_http,
    "condition": run_condition,
    "notify": run_notify,
    "approval": run_approval,
    "runner": run_runner,
}


def failure_outcome(call: StepCall, failure: StepFailure, attempt: int) -> Outcome:
    """Retry or fail ``failure`` by the step's policy (the rule lives in shared, for runner results too)."""
    return engine_rules.failure_outcome(
        call.step,
        attempt=attempt,
        max_attempts=call.run.max_attempts,
        message=failure.message,
        reason=failure.reason,
        output=failure.output,
        input=failure.input,
    )


def execute(call: StepCall, attempt: int, *, time_limit_ms: float | None = None) -> Outcome:
    """Run the step once; every failure becomes an Outcome, never an exception.

    ``time_limit_ms`` bounds a step that runs without a message of its own (an
    inline condition); a step with its own message has Dramatiq's time limit.
    """
    try:
        with step_deadline(time_limit_ms) if time_limit_ms else contextlib.nullcontext():
            if call.step.when and not evaluate(call.step.when, call.context):
                return Outcome("skipped", input={"when": call.step.when})
            return EXECUTORS[call.step.type](call)
    except StepFailure as failure:
        return failure_outcome(call, failure, attempt)
    except TemplateError as error:
        return Outcome("failed", error=str(error))
    except TimeLimitExceeded:
        failure = StepFailure(
            f"step {call.step.id!r} exceeded its time limit of {call.step.timeout_seconds:g} s",
            reason="timeout",
        )
        return failure_outcome(call, failure, attempt)
