"""The Dramatiq actors: thin — load by id, call the engine, let Dramatiq retry with our delay."""

from __future__ import annotations

import logging

import dramatiq

from shared.dispatch import RUN_STEP, STEPS_QUEUE
from shared.settings import load_settings
from worker.step_runner import Runtime
from worker.step_runner import run_step as run_step_once

log = logging.getLogger(__name__)

_runtime: Runtime | None = None


def use_runtime(value: Runtime) -> None:
    """Install the runtime the actors use (worker.main.setup does, once per process)."""
    global _runtime
    _runtime = value


def runtime() -> Runtime:
    """The process's runtime, built on first use (settings are never read at import)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime.build(load_settings())
    return _runtime


@dramatiq.actor(actor_name="aisopsflow.ping", max_retries=0)
def ping(payload: str = "") -> str:
    """Log and return ``payload``: proves that a worker consumes messages."""
    log.info("pong %s", payload)
    return payload


@dramatiq.actor(actor_name=RUN_STEP, queue_name=STEPS_QUEUE, max_retries=0)
def run_step(step_run_id: str) -> None:
    """Run one attempt of a step run; a retryable failure is retried after the step's backoff."""
    outcome = run_step_once(runtime(), step_run_id)
    if outcome is not None and outcome.status == "retry":
        # The attempt is recorded; Dramatiq redelivers this message after our delay.
        raise dramatiq.Retry(delay=outcome.retry_delay_ms)
