"""How a step's outcome moves its execution: pure rules, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.domain.backoff import backoff_ms, is_retryable, is_retryable_runner

if TYPE_CHECKING:
    from shared.domain.workflow_spec import Step

#: Execution statuses from which nothing more happens.
ENDED_EXECUTION = frozenset({"succeeded", "failed", "rejected", "timed_out", "cancelled"})
#: Execution statuses that may still change.
ACTIVE_EXECUTION = frozenset({"queued", "running", "waiting_approval"})
#: Step statuses after which the step never runs again.
ENDED_STEP = frozenset({"succeeded", "failed", "rejected", "timed_out", "skipped", "cancelled"})
#: Executions that POST /retry may restart.
RETRYABLE_EXECUTION = frozenset({"failed", "timed_out"})

#: Attempts a step may lose to dying workers beyond its retry count (so a crash is survivable
#: even with retry.max 0, and a message that keeps killing its worker still ends).
MIN_LOST_ATTEMPTS_ALLOWED = 2

#: Step types with no I/O and no side effect: a worker runs them inside the transaction
#: that reached them instead of sending each its own message (see progress.InlineRunner).
INLINE_STEP_TYPES = frozenset({"condition"})
#: Most pure steps one message runs in a row, so a long chain still yields the worker.
MAX_INLINE_STEPS = 100
#: Milliseconds into a message after which pure steps get messages again. Well under
#: TIME_LIMIT_GRACE_MS, so Dramatiq's time limit never interrupts a chain of them.
INLINE_BUDGET_MS = 1_000

#: The status an executor returns when it handed its attempt to something outside the worker
#: (a runner job): the claim stays as the executor left it, nothing is recorded now, and
#: whoever ends the job completes the attempt later (shared.runners.jobs).
HANDED_OVER = "waiting_runner"

#: Milliseconds a lease outlives the step's own timeout before another worker may take over.
LEASE_GRACE_MS = 5_000
#: Milliseconds the Dramatiq time limit outlives the step's own I/O timeout.
TIME_LIMIT_GRACE_MS = 2_000


@dataclass(frozen=True)
class Outcome:
    """What running a step once produced.

    ``status`` is one of succeeded, failed, skipped, waiting_approval, rejected,
    timed_out, ``retry`` (a retryable failure with attempts left), or
    :data:`HANDED_OVER` (never recorded: the attempt goes on elsewhere).
    ``stop_after`` ends the execution successfully after this step (a false
    condition with ``on_false: skip``).
    """

    status: str
    output: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    retry_delay_ms: int = 0
    stop_after: bool = False


@dataclass(frozen=True)
class Effect:
    """What the execution does next: continue, wait, retry, or end with a status."""

    action: str  # "continue" | "wait" | "retry" | "end"
    execution_status: str | None = None
    error_summary: str | None = None


def effect_of(step_id: str, outcome: Outcome, *, continue_on_error: bool, is_last: bool) -> Effect:
    """The execution's next move after ``step_id`` produced ``outcome``."""
    if outcome.status == "retry":
        return Effect("retry")
    if outcome.status == "waiting_approval":
        return Effect("wait", "waiting_approval")
    if outcome.status == "rejected":
        return Effect(
            "end", "rejected", f"step {step_id!r} was rejected: {outcome.error or 'rejected'}"
        )
    if outcome.status == "timed_out" and not continue_on_error:
        return Effect(
            "end", "timed_out", f"step {step_id!r} timed out: {outcome.error or 'timed out'}"
        )
    if outcome.status == "failed" and not continue_on_error:
        return Effect("end", "failed", f"step {step_id!r} failed: {outcome.error or 'failed'}")
    if outcome.stop_after or is_last:
        return Effect("end", "succeeded")
    return Effect("continue")


def lost_attempts_allowed(retry_max: int) -> int:
    """How many attempts of a step may die with their worker before the step fails."""
    return max(retry_max, MIN_LOST_ATTEMPTS_ALLOWED)


def step_time_budget_ms(timeout_seconds: float) -> tuple[int, int]:
    """(Dramatiq time_limit, lease length) in milliseconds for a step's timeout."""
    timeout_ms = int(timeout_seconds * 1000)
    return timeout_ms + TIME_LIMIT_GRACE_MS, timeout_ms + LEASE_GRACE_MS


def runs_inline(step_type: str, *, ran: int, elapsed_ms: float) -> bool:
    """Whether a worker may run a step of ``step_type`` now, after ``ran`` pure steps in this message."""
    return (
        step_type in INLINE_STEP_TYPES and ran < MAX_INLINE_STEPS and elapsed_ms < INLINE_BUDGET_MS
    )


def failure_outcome(
    step: Step,
    *,
    attempt: int,
    max_attempts: int,
    message: str,
    reason: int | str | None,
    output: dict[str, Any] | None = None,
    input: dict[str, Any] | None = None,  # noqa: A002
) -> Outcome:
    """The outcome of attempt ``attempt`` of ``step`` that failed for ``reason``: retry or fail.

    The one retry rule, for the worker and for results that arrive from runners:
    a retry needs a reason that the step's ``retry_on`` (or its type's default)
    names, and attempts left; the delay is the step's backoff, in milliseconds.
    """
    retry = step.retry
    retryable = is_retryable_runner if step.type == "runner" else is_retryable
    if reason is not None and attempt < max_attempts and retryable(reason, retry.retry_on):
        delay = backoff_ms(
            attempt, base_ms=retry.backoff_ms, max_ms=retry.max_backoff_ms, jitter=retry.jitter
        )
        return Outcome(
            "retry", output=output or {}, input=input or {}, error=message, retry_delay_ms=delay
        )
    suffix = f" (after {attempt} attempt(s))" if attempt > 1 else ""
    return Outcome("failed", output=output or {}, input=input or {}, error=message + suffix)
