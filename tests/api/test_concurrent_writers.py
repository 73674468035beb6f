"""Many writers to one tenant at once, on PostgreSQL and MariaDB: every request answered, none lost.

A real API (gunicorn, several processes and threads), a real Dramatiq worker and
scheduler; sender threads post unique webhooks over HTTP while approvers decide
and an editor keeps changing the workflow. Every write appends to the tenant's
audit hash chain, so they all meet on it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from math import inf
from typing import Any

import pytest
import requests

from ops.processes import child_environ
from shared.bootstrap import prepare
from shared.db import bind, connection
from shared.models import Execution, User, Workflow
from shared.sessions import open_session
from shared.tenancy import tenant_by_slug
from tests.support.loopback import Loopback
from tests.support.processes import REPO, Process
from tests.support.smtp_server import free_port

#: Threads posting webhooks, and webhooks each posts (all unique).
SENDERS = 8
HOOKS_PER_SENDER = 50
#: Executions waiting for approval, decided during the burst.
APPROVALS = 16
#: Edits of the webhook's workflow during the burst.
EDITS = 20
#: Seconds a process may take to answer its first request (a busy CI machine is slow).
START_TIMEOUT_SECONDS = 60
#: Seconds the worker may take to finish every execution after the burst.
DRAIN_TIMEOUT_SECONDS = 300
#: Seconds the senders, approver and editor may take.
BURST_TIMEOUT_SECONDS = 300
#: Seconds /healthz may take to answer while the burst runs (it waits for a free API thread).
HEALTH_TIMEOUT_SECONDS = 30

ENDED = ("succeeded", "failed", "rejected", "timed_out", "cancelled")


def alert_workflow(loopback_url: str, edit: int = 0) -> str:
    return f"""
id: alert
name: alert (edit {edit})
triggers:
  - type: webhook
    dedupe_key: "{{{{ body.id }}}}"
steps:
  - id: check
    type: condition
    expr: "body.severity == 'critical'"
  - id: page
    type: http
    method: POST
    url: {loopback_url}/page
"""


GATE_WORKFLOW = """
id: gate
name: approval gate
triggers:
  - type: webhook
steps:
  - id: ask
    type: approval
  - id: after
    type: condition
    expr: "true"
"""


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy value of ``condition()``, polled until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


class Api:
    """The API process over HTTP, as the admin."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def put_workflow(self, workflow_id: str, text: str) -> requests.Response:
        return self.call(
            "PUT",
            f"/api/workflows/{workflow_id}",
            data=text,
            headers={"Content-Type": "application/yaml"},
        )

    def answers(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False


@pytest.fixture
def stack(make_settings, database_url, tmp_path):
    """API (gunicorn), worker and scheduler processes on the current database, and a loopback target."""
    port = free_port()
    settings = make_settings(
        database_url=database_url,
        api_port=str(port),
        api_workers="2",
        worker_processes="1",
        worker_threads="4",
        plugin_base_port="1",
    )
    prepare(settings)
    bind(database_url)
    with connection():
        tenant = tenant_by_slug(settings.default_tenant_slug)
        admin = User.create(
            tenant=tenant, email="admin@example.test", password_hash="x", role="admin"
        )
        token = open_session(settings, admin)[0]
    processes = [
        Process(settings, [name], tmp_path / f"{name}.log").start()
        for name in ("api", "worker", "scheduler")
    ]
    api = Api(f"http://127.0.0.1:{port}", token)
    with Loopback() as loopback:
        try:
            wait_for(api.answers, START_TIMEOUT_SECONDS, "the API to answer /healthz")
            yield settings, api, loopback
        finally:
            for process in processes:
                process.stop()


def _post_hooks(api: Api, sender: int, results: list[tuple[int, Any]]) -> None:
    session = requests.Session()
    for number in range(HOOKS_PER_SENDER):
        body = {"id": f"{sender}-{number}-{uuid.uuid4().hex[:6]}", "severity": "critical"}
        try:
            response = session.post(f"{api.url}/api/hooks/alert", json=body, timeout=60)
            results.append((response.status_code, response.json()))
        except requests.RequestException as error:
            results.append((0, str(error)))


def _approve(api: Api, execution_ids: list[str], results: list[tuple[int, Any]]) -> None:
    for execution_id in execution_ids:
        response = api.call(
            "POST", f"/api/approvals/{execution_id}/ask/resolve", json={"decision": "approve"}
        )
        results.append((response.status_code, response.json()))


def _edit(api: Api, loopback_url: str, results: list[tuple[int, Any]]) -> None:
    for edit in range(1, EDITS + 1):
        response = api.put_workflow("alert", alert_workflow(loopback_url, edit))
        results.append((response.status_code, response.json()))


def _audit_verify(settings) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "audit", "verify"],
        env=child_environ(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _probe_health(api: Api, done: threading.Event, latencies: list[float]) -> None:
    """GET /healthz every half second until ``done``; record each answer's seconds (inf: none)."""
    while not done.is_set():
        began = time.monotonic()
        try:
            answered = requests.get(api.url + "/healthz", timeout=HEALTH_TIMEOUT_SECONDS)
            latencies.append(time.monotonic() - began if answered.status_code == 200 else inf)
        except requests.RequestException:
            latencies.append(inf)
        done.wait(0.5)


def _waiting_for_approval(api: Api) -> list[str]:
    """Executions of the gate workflow, each waiting at its approval step."""
    gated = []
    for n in range(APPROVALS):
        response = api.call("POST", "/api/hooks/gate", json={"n": n})
        assert response.status_code == 202, response.text
        gated.append(response.json()["execution_id"])
    for execution_id in gated:
        wait_for(
            lambda execution_id=execution_id: (
                api.call("GET", f"/api/executions/{execution_id}").json()["status"]
                == "waiting_approval"
            ),
            DRAIN_TIMEOUT_SECONDS,
            f"execution {execution_id} to wait for its approval",
        )
    return gated


def _all_ended() -> bool:
    with connection():
        return not Execution.select().where(Execution.status.not_in(ENDED)).exists()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_concurrent_webhooks_approvals_and_edits_are_all_answered_and_kept(stack):
    settings, api, loopback = stack
    assert api.put_workflow("alert", alert_workflow(loopback.url)).status_code == 200
    assert api.put_workflow("gate", GATE_WORKFLOW).status_code == 200
    gated = _waiting_for_approval(api)

    hooks: list[tuple[int, Any]] = []
    decisions: list[tuple[int, Any]] = []
    edits: list[tuple[int, Any]] = []
    health: list[float] = []
    done = threading.Event()
    prober = threading.Thread(target=_probe_health, args=(api, done, health))
    threads = [
        threading.Thread(target=_post_hooks, args=(api, sender, hooks)) for sender in range(SENDERS)
    ]
    threads.append(threading.Thread(target=_approve, args=(api, gated, decisions)))
    threads.append(threading.Thread(target=_edit, args=(api, loopback.url, edits)))
    began = time.monotonic()
    for thread in [prober, *threads]:
        thread.start()
    for thread in threads:
        thread.join(timeout=BURST_TIMEOUT_SECONDS)
    burst_seconds = time.monotonic() - began
    done.set()
    prober.join(timeout=HEALTH_TIMEOUT_SECONDS + 5)

    answers = hooks + decisions + edits
    statuses = Counter(status for status, _ in answers)
    failures = [(status, body) for status, body in answers if status >= 500 or status == 0]
    print(
        f"\n{settings.database_url.split(':')[0]}: burst {burst_seconds:.1f} s, "
        f"answers {dict(statuses)}, slowest /healthz {max(health):.2f} s"
    )
    assert not failures, f"{len(failures)} request(s) failed: {failures[:5]}\n{dict(statuses)}"
    assert Counter(status for status, _ in hooks) == {202: SENDERS * HOOKS_PER_SENDER}
    assert Counter(status for status, _ in decisions) == {200: APPROVALS}
    assert Counter(status for status, _ in edits) == {200: EDITS}
    assert max(health) < HEALTH_TIMEOUT_SECONDS  # /healthz answered all along

    accepted = {body["execution_id"] for _, body in hooks}
    with connection():
        alert = Workflow.get(Workflow.workflow_key == "alert")
        stored = {
            row.id for row in Execution.select(Execution.id).where(Execution.workflow == alert.id)
        }
        assert alert.version == EDITS + 1
    assert accepted == stored  # every accepted webhook has its execution, and nothing else

    wait_for(_all_ended, DRAIN_TIMEOUT_SECONDS, "the worker to finish every execution")
    print(f"all executions ended {time.monotonic() - began:.1f} s after the burst began")
    with connection():
        ended = Counter(row.status for row in Execution.select(Execution.status))
    assert ended == {"succeeded": SENDERS * HOOKS_PER_SENDER + APPROVALS}
    assert loopback.count("/page") >= SENDERS * HOOKS_PER_SENDER

    verified = _audit_verify(settings)
    assert verified.returncode == 0, verified.stderr + verified.stdout
    assert "audit log OK" in verified.stdout
