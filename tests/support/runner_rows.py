"""Runner rows for tests that play the runner: an enrolled, online runner with a test identity key,
results signed by it (what a real agent would send through the gateway), and a :class:`Stack`
that parks a runner step on a job as the worker does."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.db import write_transaction
from shared.dispatch import Dispatcher
from shared.domain import job_signing
from shared.engine import progress
from shared.engine.executions import start_execution
from shared.models import Runner, RunnerCertificate, RunnerJob, StepRun, utcnow
from shared.runners import jobs
from shared.workflows import put_workflow


def make_runner(
    tenant_id: str,
    *,
    labels: dict[str, str] | None = None,
    online: bool = True,
    name: str = "host-1",
    fingerprint: str | None = None,
) -> tuple[Runner, Ed25519PrivateKey]:
    """An enrolled runner (online unless told) and the private half of its identity key."""
    key = job_signing.new_signing_key()
    now = utcnow()
    with write_transaction():
        runner = Runner.create(
            tenant=tenant_id,
            name=name,
            labels_json=json.dumps(labels or {}),
            identity_public_key=job_signing.public_key_raw(key).hex(),
            status="online" if online else "offline",
            last_seen_at=now if online else None,
            cert_fingerprint=fingerprint,
        )
        if fingerprint:
            RunnerCertificate.create(
                tenant=tenant_id, fingerprint=fingerprint, runner=runner.id, not_after=now
            )
    return runner, key


def signed_result(
    key: Ed25519PrivateKey,
    job_id: str,
    runner_id: str,
    *,
    status: str = "succeeded",
    exit_code: int | None = 0,
    error: str | None = None,
    **extra: Any,
) -> tuple[bytes, bytes]:
    """A result payload as an agent builds it, and its signature by ``key``."""
    now_ms = int(utcnow().timestamp() * 1000)
    fields = {
        "job_id": job_id,
        "runner_id": runner_id,
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "started_at_ms": now_ms - 5,
        "ended_at_ms": now_ms,
        "duration_ms": 5,
        "stdout_bytes": 0,
        "stderr_bytes": 0,
        "stdout_capped": False,
        "stderr_capped": False,
        "last_seq": 0,
        **extra,
    }
    payload = job_signing.result_payload(**fields)
    return payload, job_signing.sign(key, payload)


SECRET = "s3cret-token-value-42"


def workflow_yaml(extra: str = "", then: bool = False) -> str:
    after = (
        """
  - id: after
    type: condition
    expr: "true"
"""
        if then
        else ""
    )
    return f"""
id: wf
name: runner step
triggers: [{{type: webhook}}]
steps:
  - id: run
    type: runner
    runner: {{labels: {{role: db}}}}
    command: [echo, hi]
    {extra}
{after}"""


class Stack:
    """A tenant with a runner, a workflow, and the helpers to run its runner step like the worker."""

    def __init__(self, settings, tenant, runner, key) -> None:
        self.settings = settings
        self.tenant = tenant
        self.runner = runner
        self.key = key
        self.dispatcher = Dispatcher(settings)

    def start(self, extra: str = "", then: bool = False) -> tuple[str, RunnerJob]:
        """A new execution whose runner step is parked on a queued job; (step run id, job)."""
        workflow = put_workflow(self.tenant.id, "wf", workflow_yaml(extra, then), actor="test")[0]
        started = start_execution(
            workflow,
            trigger_type="webhook",
            trigger_ref="",
            context={},
            dedupe_key=None,
            actor="test",
        )
        run_id = StepRun.get(StepRun.execution == started.execution.id).id
        return run_id, self.dispatch(run_id)

    def dispatch(self, run_id: str) -> RunnerJob:
        claim, _ = progress.claim(run_id, "worker-1")
        assert claim is not None
        with write_transaction():
            job = jobs.create_job(
                claim.run,
                self.runner,
                argv=["echo", "hi"],
                script=None,
                shell=None,
                env={"TOKEN": SECRET},
                cwd=None,
                timeout_seconds=60,
                settings=self.settings,
                now=utcnow(),
            )
            jobs.hand_over(claim.run, job, json.dumps({"job_id": job.id}))
        return job

    def result(self, job: RunnerJob, **fields) -> None:
        payload, signature = signed_result(self.key, job.id, self.runner.id, **fields)
        jobs.record_result(
            self.runner.id, job.id, 1, payload, signature, dispatcher=self.dispatcher
        )
