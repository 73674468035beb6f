"""Run an execution's pending steps through the real step runner, in the test's process."""

from __future__ import annotations

from typing import Any

from shared.db import connection
from shared.models import StepRun


def run_pending_steps(settings: Any, execution_id: str, *, rounds: int = 5) -> None:
    """Claim and run each pending step run of the execution, as a worker would."""
    from worker.step_runner import Runtime, run_step

    runtime = Runtime.build(settings)
    for _ in range(rounds):
        with connection():
            pending = [
                run.id
                for run in StepRun.select().where(
                    StepRun.execution == execution_id, StepRun.status == "pending"
                )
            ]
        if not pending:
            return
        for step_run_id in pending:
            run_step(runtime, step_run_id)
