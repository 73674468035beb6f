"""What one step message works with: the template context, and the pure steps worked out in advance.

A pure step (``condition``) has no I/O and no side effect, so the worker works
it out *before* taking the write lock (SQLite has one writer at a time) and the
transaction that reaches it only records it (see ``progress.InlineRunner``): a
chain of conditions costs one message and one transaction. Running a pure step
twice is harmless, so nothing is lost if the transaction finds another worker
was first: the planned outcome is simply not used.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from shared import secrets_store
from shared.db import PreparedSelect
from shared.domain.engine_rules import ENDED_STEP, Outcome, effect_of, runs_inline
from shared.domain.workflow_spec import Step, WorkflowSpec
from shared.engine.context import build_context, step_view
from shared.engine.progress import read_step_run, stored_output
from shared.engine.specs import spec_of_execution
from shared.keyring import CachedKeyring
from shared.models import Execution, StepRun
from shared.plugin_client import PluginClient
from shared.settings import Settings
from worker.attempt import execute
from worker.crash import masked_crash
from worker.steps.base import StepCall

log = logging.getLogger(__name__)

#: The runs of an execution before a step index: what ``steps.<id>`` shows.
EARLIER_RUNS = PreparedSelect(
    lambda execution_id, step_index: StepRun.select().where(
        StepRun.execution == execution_id, StepRun.step_index < step_index
    ),
    arity=2,
)


class StepChain:
    """The context a message's steps share, and the outcomes of the pure steps planned for it.

    The context is read once, before the claim; each step's result is added to it
    exactly as it will be stored, so later steps see what a fresh read would give.
    """

    def __init__(self, settings: Settings, plugins: PluginClient, keys: CachedKeyring) -> None:
        self.settings = settings
        self.plugins = plugins
        self.keys = keys
        self.started = time.monotonic()
        self.context: dict[str, Any] = {}
        self.known_secrets: tuple[str, ...] = ()
        self.planned: dict[str, tuple[int, Outcome]] = {}

    def prepare(self, step_run_id: str, now: datetime) -> bool:
        """Read the context and plan the pure steps from this one on; False if the run has ended.

        ``now`` is the time the claim will use, so a template reading
        ``execution.started_at`` sees the value the claim stores.
        """
        run = read_step_run(step_run_id)
        if run is None or run.status in ENDED_STEP:
            return False  # a duplicate message: nothing to claim
        execution: Execution = run.execution
        spec = spec_of_execution(execution)
        secrets = secrets_store.read_all(self.keys.get(), execution.tenant_id)
        earlier = EARLIER_RUNS.all(execution.id, run.step_index)
        self.context = build_context(execution, spec, earlier, secrets)
        self.known_secrets = tuple(secrets.values())
        if execution.started_at is None:
            self.context["execution"]["started_at"] = now.isoformat()
        if run.status == "pending":
            self.plan(execution, spec, run.step_index, attempt=run.attempt + 1)
        return True

    def call(self, step: Step, run: StepRun, execution: Execution) -> StepCall:
        """What an executor receives for one attempt of ``run``."""
        return StepCall(step, run, self.context, self.settings, self.plugins, execution.id)

    def record(self, step: Step, outcome: Outcome) -> None:
        """Show ``step``'s outcome to the steps after it, as it will be stored."""
        stored = StepRun(
            step_id=step.id,
            status=outcome.status,
            output_redacted=stored_output(outcome, self.known_secrets),
            error=outcome.error,
        )
        self.context["steps"][step.id] = step_view(stored)

    def plan_after(
        self, execution: Execution, spec: WorkflowSpec, step: Step, outcome: Outcome
    ) -> None:
        """Record ``step``'s outcome and, if the execution goes on, plan the pure steps after it."""
        self.record(step, outcome)
        index = spec.step_index(step.id)
        if self._goes_on(spec, index, outcome):
            self.plan(execution, spec, index + 1, attempt=1)

    @staticmethod
    def _goes_on(spec: WorkflowSpec, index: int, outcome: Outcome) -> bool:
        step = spec.steps[index]
        effect = effect_of(
            step.id,
            outcome,
            continue_on_error=step.continue_on_error,
            is_last=index == len(spec.steps) - 1,
        )
        return effect.action == "continue"

    def plan(self, execution: Execution, spec: WorkflowSpec, index: int, *, attempt: int) -> None:
        """Work out the pure steps from ``index`` on, as far as they run in a row."""
        while index < len(spec.steps):
            step = spec.steps[index]
            elapsed_ms = (time.monotonic() - self.started) * 1000
            if not runs_inline(step.type, ran=len(self.planned), elapsed_ms=elapsed_ms):
                return
            run = StepRun(
                step_id=step.id,
                step_index=index,
                attempt=attempt,
                max_attempts=step.retry.max + 1,
                status="running",
            )
            outcome = self._run(step, run, execution)
            self.planned[step.id] = (attempt, outcome)
            self.record(step, outcome)
            if not self._goes_on(spec, index, outcome):
                return
            index, attempt = index + 1, 1

    def _run(self, step: Step, run: StepRun, execution: Execution) -> Outcome:
        try:
            # No message of its own carries this step's time limit: hold it to it here.
            return execute(
                self.call(step, run, execution),
                run.attempt,
                time_limit_ms=step.timeout_seconds * 1000,
            )
        except Exception as error:  # noqa: BLE001 - a planned step must not stop the message
            crash = masked_crash(
                log, f"pure step {step.id!r} of {execution.id}", error, self.known_secrets
            )
            return Outcome("failed", error=f"internal error: {crash.message}")

    def outcome_for(self, step: Step, attempt: int) -> Outcome | None:
        """The planned outcome of ``step``'s attempt ``attempt``; None sends the step a message."""
        planned = self.planned.get(step.id)
        if planned is None or planned[0] != attempt:
            return None
        return planned[1]
