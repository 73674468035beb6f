"""Wake-up messages for step runs, sent only after the transaction that made them commits."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from shared.dispatch import RUN_STEP, Dispatcher
from shared.domain.engine_rules import step_time_budget_ms
from shared.domain.workflow_spec import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wakeup:
    """A ``run_step`` message to send: which step run, with that step's Dramatiq options."""

    step_run_id: str
    options: dict[str, int]
    delay_ms: int | None = None


def wakeup_for(step_run_id: str, step: Step, *, delay_ms: int | None = None) -> Wakeup:
    """The message for ``step_run_id``: the step's time limit and retry settings as options."""
    time_limit_ms, _ = step_time_budget_ms(step.timeout_seconds)
    return Wakeup(
        step_run_id,
        {
            "time_limit": time_limit_ms,
            "max_retries": step.retry.max,
            "min_backoff": max(1, step.retry.backoff_ms),
            "max_backoff": max(1, step.retry.max_backoff_ms),
        },
        delay_ms,
    )


def send(dispatcher: Dispatcher, wakeups: Iterable[Wakeup]) -> None:
    """Enqueue each wake-up. A failure is logged, not raised: the reconciler re-sends it."""
    for wakeup in wakeups:
        try:
            dispatcher.send(
                RUN_STEP,
                wakeup.step_run_id,
                delay_ms=wakeup.delay_ms,
                **wakeup.options,
            )
        except Exception:  # noqa: BLE001 - the database already holds the work
            log.warning(
                "could not enqueue step run %s; the reconciler will re-send it",
                wakeup.step_run_id,
                exc_info=True,
            )
