"""The `runner` step: send a signed job to a runner and park the attempt until its result arrives.

No worker thread waits for the command. In one transaction the worker writes
the job and hands the step's lease to ``runner-job:<job_id>``; the step stays
``running``, and the result (or the reconciler, or a denial) completes the
attempt later through shared.runners.jobs. The executor returns
``HANDED_OVER`` so the worker records nothing itself.
"""

from __future__ import annotations

import math
from typing import Any

from shared.db import in_write_transaction, lock_for_update
from shared.domain.engine_rules import HANDED_OVER, Outcome
from shared.domain.templating import render_value
from shared.engine import progress
from shared.models import Runner, StepRun, utcnow
from shared.runners import jobs, selection, signals
from shared.runners.selection import describe
from worker.steps.base import StepCall, StepFailure

#: What the step input shows instead of each environment value (they often carry secrets).
ENV_MASK = "***"


def _rendered(call: StepCall) -> dict[str, Any]:
    """The job's command, script, env and cwd with templates rendered (each argv item on its own).

    With ``shell`` set, ``command`` runs through that shell: its items joined by spaces.
    """
    params = call.step.params
    fields = {
        "argv": params.get("command"),
        "script": params.get("script"),
        "env": dict(params.get("env") or {}),
        "cwd": params.get("cwd"),
    }
    job = render_value(fields, call.context)
    shell = params.get("shell")
    if shell and job["argv"]:
        # The author asked for a shell: the rendered items become one command line
        # for it (the only case where a template's value meets a shell).
        job["argv"] = [shell, "-c", " ".join(job["argv"])]
    return job


def _shown_input(job: dict[str, Any], runner: Runner, job_id: str, shell: str | None) -> dict:
    """The step input users see: env values are masked whatever they hold."""
    return {
        "runner_id": runner.id,
        "job_id": job_id,
        "command": job["argv"],
        "script": job["script"],
        "shell": shell,
        "env": dict.fromkeys(job["env"], ENV_MASK),
        "cwd": job["cwd"],
    }


@in_write_transaction
def _dispatch(call: StepCall, runner_id: str, job: dict[str, Any], timeout: int) -> str | None:
    """Write the job and hand the lease over, if this worker still holds the claim; the job id."""
    execution = progress.lock_execution(call.run.tenant_id, call.run.execution_id)
    run = lock_for_update(StepRun.select().where(StepRun.id == call.run.id)).first()
    if (
        execution is None
        or run is None
        or run.status != "running"
        or run.lease_owner != call.run.lease_owner
        or run.attempt != call.run.attempt
    ):
        return None  # the claim ran out: the attempt that holds it now will dispatch
    runner = Runner.get_by_id(runner_id)
    shell = call.step.params.get("shell")
    row = jobs.create_job(
        run,
        runner,
        argv=job["argv"],
        script=job["script"],
        shell=shell,
        env=job["env"],
        cwd=job["cwd"],
        timeout_seconds=timeout,
        settings=call.settings,
        now=utcnow(),
    )
    known = tuple(call.context.get("secrets", {}).values())
    shown = progress.stored_json(_shown_input(job, runner, row.id, shell), known)
    jobs.hand_over(run, row, shown)
    return row.id


def run_runner(call: StepCall) -> Outcome:
    """Pick an eligible online runner, queue the signed job for it, and park the attempt.

    StepFailure ``no_runner`` (retryable by default) when no runner of the
    tenant matching the selector is online and allowed.
    """
    job = _rendered(call)
    selector = call.step.params["runner"]
    runner = selection.pick(call.run.tenant_id, selector, utcnow())
    if runner is None:
        raise StepFailure(
            f"no eligible runner online for {describe(selector)}",
            reason="no_runner",
            input={"runner": dict(selector)},
        )
    timeout = max(1, math.ceil(call.step.timeout_seconds))
    job_id = _dispatch(call, runner.id, job, timeout)
    if job_id is not None:
        settings = call.settings
        signals.publish(
            settings, signals.jobs_channel(settings), {"runner_id": runner.id, "job_id": job_id}
        )
    return Outcome(HANDED_OVER)
