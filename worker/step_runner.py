"""Run one attempt of one step run: claim it, execute it, record the outcome, wake the next step."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from dramatiq.middleware.time_limit import TimeLimitExceeded

from shared import secrets_store
from shared.db import connection
from shared.dispatch import Dispatcher
from shared.domain.backoff import backoff_ms, is_retryable
from shared.domain.engine_rules import Outcome
from shared.domain.templating import TemplateError, evaluate
from shared.engine import outbox, progress
from shared.engine.context import build_context
from shared.engine.specs import spec_of_execution
from shared.keyring import CachedKeyring
from shared.models import Execution, StepRun
from shared.plugin_client import PluginClient
from shared.settings import Settings
from worker.steps.approval import run_approval
from worker.steps.base import StepCall, StepFailure
from worker.steps.condition import run_condition
from worker.steps.http import run_http
from worker.steps.notify import run_notify

log = logging.getLogger(__name__)

EXECUTORS: dict[str, Callable[[StepCall], Outcome]] = {
    "http": run_http,
    "condition": run_condition,
    "notify": run_notify,
    "approval": run_approval,
}


@dataclass
class Runtime:
    """What a worker process builds once: settings, keys, the dispatcher and the plugin client."""

    settings: Settings
    dispatcher: Dispatcher
    plugins: PluginClient
    keys: CachedKeyring

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Everything a worker process needs, built once."""
        return cls(settings, Dispatcher(settings), PluginClient(settings), CachedKeyring(settings))


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def _failure_outcome(call: StepCall, failure: StepFailure, attempt: int) -> Outcome:
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


def execute(call: StepCall, attempt: int) -> Outcome:
    """Run the step once; every failure becomes an Outcome, never an exception."""
    try:
        if call.step.when and not evaluate(call.step.when, call.context):
            return Outcome("skipped", input={"when": call.step.when})
        return EXECUTORS[call.step.type](call)
    except StepFailure as failure:
        return _failure_outcome(call, failure, attempt)
    except TemplateError as error:
        return Outcome("failed", error=str(error))
    except TimeLimitExceeded:
        failure = StepFailure(
            f"step {call.step.id!r} exceeded its time limit of {call.step.timeout_seconds:g} s",
            reason="timeout",
        )
        return _failure_outcome(call, failure, attempt)


def run_step(runtime: Runtime, step_run_id: str) -> Outcome | None:
    """Claim, execute and record one attempt; returns the outcome (None if nothing ran)."""
    with connection():
        claim, wakeups = progress.claim(step_run_id, _owner())
        outbox.send(runtime.dispatcher, wakeups)
        if claim is None:
            return None
        run = StepRun.get_by_id(claim.step_run_id)
        execution = Execution.get_by_id(claim.execution_id)
        spec = spec_of_execution(execution)
        secrets = secrets_store.read_all(runtime.keys.get(), execution.tenant_id)
        earlier = StepRun.select().where(
            StepRun.execution == execution.id, StepRun.step_index < run.step_index
        )
        context = build_context(execution, spec, earlier, secrets)
        call = StepCall(
            spec.step(run.step_id), run, context, runtime.settings, runtime.plugins, execution.id
        )
        outcome = execute(call, claim.attempt)
        recorded, wakeups = progress.complete(claim, outcome, known_secrets=tuple(secrets.values()))
        outbox.send(runtime.dispatcher, wakeups)
        if not recorded:
            log.info("step run %s: lease lost; another attempt's result stands", step_run_id)
        return outcome
