"""The `runner` step with a real worker and scheduler: the execution parks on a signed job and a result resumes it.

The test plays the runner and its gateway: it reads the job the worker wrote,
stores log chunks and sends a result signed by the runner's (test) identity
key through shared.runners.jobs, exactly as the gateway does.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis

from shared import secrets_store
from shared.db import connection
from shared.dispatch import Dispatcher
from shared.domain import job_signing
from shared.keyring import keyring
from shared.models import RunnerJob
from shared.runner_keys import load_job_signing_key
from shared.runners import jobs, masking, signals
from tests.support.runner_rows import make_runner, signed_result

SECRET = "pg-password-0123456789"


def runner_workflow(loopback_url: str, step: str = "", retry: str = "") -> str:
    return f"""
id: remote
name: runner step then http
triggers: [{{type: webhook}}]
steps:
  - id: run
    type: runner
    runner: {{labels: {{role: db}}}}
    command: [sh, -c, 'echo out; echo err >&2; exit 3', "{{{{ body.arg }}}}"]
    env: {{PGPASSWORD: "{{{{ secrets.PG }}}}", PLAIN: "x"}}
    timeout_seconds: 30
    {step}
    {retry}
  - id: after
    type: http
    method: POST
    url: {loopback_url}/after
"""


@pytest.fixture
def plane(engine):
    """The engine, a secret, and the gateway's side of the runner plane in this process."""
    masking.use_settings(engine.settings)
    with connection():
        secrets_store.put(keyring(engine.settings), engine.tenant_id, "PG", SECRET, actor="test")
    return engine


def online_runner(engine, **labels):
    with connection():
        return make_runner(engine.tenant_id, labels=labels or {"role": "db"})


def wait_for_job(engine, execution_id: str, attempt: int = 1, timeout: float = 30.0) -> RunnerJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection():
            job = RunnerJob.get_or_none(
                RunnerJob.execution == execution_id, RunnerJob.attempt == attempt
            )
        if job is not None:
            return job
        time.sleep(0.05)
    raise AssertionError(f"no job for attempt {attempt}\n{engine.worker.output()[-3000:]}")


def answer(engine, runner, key, job, **fields) -> None:
    """What the gateway does with a runner's log chunks and signed result."""
    payload, signature = signed_result(key, job.id, runner.id, **fields)
    with connection():
        jobs.record_result(
            runner.id, job.id, 9, payload, signature, dispatcher=Dispatcher(engine.settings)
        )


def test_the_execution_parks_and_the_result_resumes_it(plane, loopback):
    runner, key = online_runner(plane)
    settings = plane.settings
    subscriber = redis.Redis.from_url(settings.resolved_redis_url).pubsub()
    subscriber.subscribe(signals.jobs_channel(settings))
    subscriber.get_message(timeout=2)
    plane.put_workflow("remote", runner_workflow(loopback.url, "expect_exit: [0, 3]"))

    execution_id = plane.hook("remote", {"arg": "a b; rm -rf /"}).json["execution_id"]
    job = wait_for_job(plane, execution_id)
    parked = plane.execution(execution_id)
    with connection():
        jobs.record_accepted(runner.id, job.id)
        jobs.record_log_chunk(runner.id, job.id, 1, "stdout", b"out\n")
        jobs.record_log_chunk(runner.id, job.id, 2, "stderr", b"err\n")
    answer(plane, runner, key, job, status="failed", exit_code=3, duration_ms=12)
    view = plane.wait_for(execution_id)

    published = subscriber.get_message(timeout=5)
    payload = job_signing.verify(
        load_job_signing_key(settings).public_key(),
        jobs.open_payload(job, keyring(settings)),
        bytes.fromhex(job.signature),
    )
    step = plane.step(view, "run")
    assert json.loads(published["data"]) == {"runner_id": runner.id, "job_id": job.id}
    assert parked["status"] == "running" and plane.step(parked, "run")["status"] == "running"
    # Templates render into one argv element each: no shell sees the body's text.
    assert payload["argv"][-1] == "a b; rm -rf /" and payload["env"]["PGPASSWORD"] == SECRET
    assert view["status"] == "succeeded" and loopback.count("/after") == 1
    assert step["output"]["exit_code"] == 3
    assert (step["output"]["stdout"], step["output"]["stderr"]) == ("out\n", "err\n")
    assert step["output"]["runner_id"] == runner.id and step["output"]["job_id"] == job.id
    assert step["input"]["env"] == {"PGPASSWORD": "***", "PLAIN": "***"}
    assert SECRET not in json.dumps(view)


def test_a_nonzero_exit_not_expected_fails_the_step(plane, loopback):
    runner, key = online_runner(plane)
    plane.put_workflow("remote", runner_workflow(loopback.url, retry="retry: {max: 2}"))

    execution_id = plane.hook("remote", {"arg": "x"}).json["execution_id"]
    job = wait_for_job(plane, execution_id)
    answer(plane, runner, key, job, status="failed", exit_code=3)
    view = plane.wait_for(execution_id)

    step = plane.step(view, "run")
    assert view["status"] == "failed" and step["attempt"] == 1
    assert "exited with code 3" in step["error"] and loopback.count("/after") == 0


def test_no_runner_online_is_retried_until_one_is(plane, loopback):
    plane.put_workflow(
        "remote",
        runner_workflow(loopback.url, retry="retry: {max: 5, backoff_ms: 1500, jitter: false}"),
    )

    execution_id = plane.hook("remote", {"arg": "x"}).json["execution_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        step = plane.step(plane.execution(execution_id), "run")
        if step["error"]:
            break
        time.sleep(0.05)
    runner, key = online_runner(plane)
    job = wait_for_job(plane, execution_id, attempt=step["attempt"] + 1)
    answer(plane, runner, key, job, status="succeeded", exit_code=0)
    view = plane.wait_for(execution_id)

    assert step["error"] == "no eligible runner online for labels role=db"
    assert view["status"] == "succeeded" and loopback.count("/after") == 1


def test_a_lost_job_is_retried_as_a_new_job(plane, loopback):
    runner, key = online_runner(plane)
    plane.put_workflow(
        "remote",
        runner_workflow(loopback.url, retry="retry: {max: 1, backoff_ms: 10, jitter: false}"),
    )

    execution_id = plane.hook("remote", {"arg": "x"}).json["execution_id"]
    first = wait_for_job(plane, execution_id)
    with connection():
        # The reconciler's pass, run as if the job's deadline had passed.
        jobs.expire_overdue(Dispatcher(plane.settings), first.deadline_at + timedelta(seconds=1))
    second = wait_for_job(plane, execution_id, attempt=2)
    answer(plane, runner, key, second, status="succeeded", exit_code=0)
    view = plane.wait_for(execution_id)

    with connection():
        lost = RunnerJob.get_by_id(first.id)
    assert lost.status == "lost" and second.id != first.id
    assert view["status"] == "succeeded" and plane.step(view, "run")["attempt"] == 2


def test_with_shell_the_command_items_become_one_shell_line(plane, loopback):
    online_runner(plane)
    plane.put_workflow("remote", runner_workflow(loopback.url, "shell: bash"))

    execution_id = plane.hook("remote", {"arg": "$HOME"}).json["execution_id"]
    job = wait_for_job(plane, execution_id)

    argv = json.loads(jobs.open_payload(job, keyring(plane.settings)))["argv"]
    assert argv == ["bash", "-c", "sh -c echo out; echo err >&2; exit 3 $HOME"]
