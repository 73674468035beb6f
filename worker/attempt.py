"""One attempt of one step: run its executor and turn every failure into an Outcome."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from dramatiq.middleware.time_limit import TimeLimitExceeded

from shared.domain.backoff import backoff_ms, is_retryable
from shared.domain.engine_rules import Outcome
from shared.domain.templating import TemplateError, evaluate
from worker.step_deadline import step_deadline
from worker.steps.approval import run_approval
from worker.steps.base import StepCall, StepFailure
from worker.steps.condition import run_condition
from worker.steps.http import run_http
from worker.steps.notify import run_notify

EXECUTORS: dict[str, Callable[[StepCall], Outcome]] = {
    "http": run_http,
    "condition": run_condition,
    "notify": run_notify,
    "approval": run_approval,
}


def failure_outcome(call: StepCall, failure: StepFailure, attempt: int) -> Outcome:
    step = call.step
    retry = step.retry
    if (
        failure.reason is not None
        and attempt < call.run.max_attempts
        and is_retryable(failure.reason, retry.retry_on)
    ):
        delay = backoff_ms(
            attempt, base_ms=retry.backoff_ms, max_ms=retry.max_backoff_ms, jitter=retry.jitter
        )
        return Outcome(
            "retry",
            output=failure.output,
            input=failure.input,
            error=failure.message,
            retry_delay_ms=delay,
        )
    suffix = f" (after {attempt} attempt(s))" if attempt > 1 else ""
    return Outcome(
        "failed", output=failure.output, input=failure.input, error=failure.message + suffix
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
