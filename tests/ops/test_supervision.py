"""`up` keeps the stack alive: a SIGKILLed worker or embedded Redis is restarted, the API
keeps answering, and the execution that was running completes."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import redis
import requests

from shared.domain.engine_rules import ACTIVE_EXECUTION
from tests.support.loopback import Loopback
from tests.support.up_stack import (
    STOPPED_WITHIN_S,
    RunningStack,
    assert_all_gone,
    descendants,
    watching_health,
)

#: Bound on an execution's recovery after a kill. Measured on a loaded 2-core box: ~15 s
#: for the worker (lease of the killed step: its timeout + 5 s) and ~21 s for Redis
#: (the lost delayed retry is re-sent 15 s after it was due).
RECOVERED_WITHIN_S = 50
#: How long `up` may take to bring a killed child back (0.5 s backoff + start-up).
RESTARTED_WITHIN_S = 20


class Api:
    """The stack's API over HTTP, logged in as its bootstrap admin."""

    def __init__(self, stack: RunningStack) -> None:
        self.url = stack.api
        login = requests.post(
            f"{self.url}/api/login",
            json={"email": "admin@example.com", "password": "admin-password-1"},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        self.headers = {"Authorization": f"Bearer {login.json()['token']}"}

    def start(self, workflow_id: str, yaml_text: str) -> str:
        """Upload the workflow and fire its webhook; returns the execution id."""
        put = requests.put(
            f"{self.url}/api/workflows/{workflow_id}",
            data=yaml_text,
            headers={**self.headers, "Content-Type": "application/yaml"},
            timeout=10,
        )
        assert put.status_code == 200, put.text
        return self.fire(workflow_id)

    def fire(self, workflow_id: str) -> str:
        """Post to the workflow's webhook; returns the execution id."""
        hook = requests.post(f"{self.url}/api/hooks/{workflow_id}", json={}, timeout=10)
        assert hook.status_code in (200, 201, 202), hook.text
        return hook.json()["execution_id"]

    def execution(self, execution_id: str) -> dict[str, Any]:
        answer = requests.get(
            f"{self.url}/api/executions/{execution_id}", headers=self.headers, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_until_ended(self, execution_id: str, stack: RunningStack) -> dict[str, Any]:
        deadline = time.monotonic() + RECOVERED_WITHIN_S
        while time.monotonic() < deadline:
            view = self.execution(execution_id)
            if view["status"] not in ACTIVE_EXECUTION:
                return view
            time.sleep(0.2)
        pytest.fail(f"{execution_id} still {view['status']}: {view}\n{stack.output()[-6000:]}")


def wait_for(condition: Any, timeout_s: float, what: str, stack: RunningStack) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s} s\n{stack.output()[-6000:]}")
        time.sleep(0.05)


def step(view: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(item for item in view["steps"] if item["step_id"] == step_id)


@pytest.mark.parametrize("victim", ["leader", "worker process"])
def test_a_sigkilled_worker_is_restarted_and_the_running_step_completes(stack, victim):
    """``leader``: the Dramatiq master `up` started; ``worker process``: one it forked,
    whose death makes the master shut down on its own."""
    with Loopback() as loopback:
        loopback.route("/slow", delay_seconds=3)
        api = Api(stack)
        execution_id = api.start(
            "survive-worker",
            f"""
id: survive-worker
name: a worker dies during the slow step
triggers: [{{type: webhook}}]
steps:
  - id: first
    type: http
    url: {loopback.url}/first
  - id: slow
    type: http
    url: {loopback.url}/slow
    timeout_seconds: 5
  - id: last
    type: http
    url: {loopback.url}/last
""",
        )
        wait_for(lambda: loopback.count("/slow") == 1, 30, "call to /slow", stack)
        worker = stack.child("worker")
        worker_processes = worker.children()

        with watching_health(stack) as health:
            (worker if victim == "leader" else worker_processes[0]).kill()
            killed_at = time.monotonic()
            restarted = stack.wait_for_new_child("worker", worker.pid, RESTARTED_WITHIN_S)
            restarted_s = time.monotonic() - killed_at
            view = api.wait_until_ended(execution_id, stack)
            recovered_s = time.monotonic() - killed_at

    print(
        f"worker {victim} SIGKILL: restarted after {restarted_s:.1f} s, execution ended "
        f"{recovered_s:.1f} s after the kill; /healthz {len(health.statuses)} answers, "
        f"{len(health.failures)} without answer"
    )
    assert view["status"] == "succeeded", view
    assert step(view, "slow")["attempt"] == 2  # the killed try, then the re-sent one
    assert loopback.count("/first") == 1 and loopback.count("/last") == 1
    assert restarted.pid != worker.pid
    # The killed leader's worker processes went with it: none keeps taking messages.
    assert not any(process.is_running() for process in worker_processes)
    assert re.search(
        r"\| worker (killed by SIGKILL|exited with code \d+); restarting it in 500 ms",
        stack.output(),
    )
    assert health.failures == [] and set(health.statuses) == {200}, health

    # SIGTERM still stops everything, the restarted worker and its processes included.
    children = descendants(stack.process)
    stack.process.terminate()
    assert stack.process.wait(timeout=STOPPED_WITHIN_S) == 0, stack.output()
    assert_all_gone(children, stack.output())


def delayed_messages(stack: RunningStack) -> int:
    """Messages waiting in the embedded Redis's delay queues; -1 while it does not answer."""
    client = redis.Redis(unix_socket_path=str(stack.data_dir / "redis.sock"), socket_timeout=5)
    try:
        return sum(client.hlen(key) for key in client.keys("*.DQ.msgs"))
    except redis.ConnectionError:
        return -1
    finally:
        client.close()


def test_a_sigkilled_redis_is_restarted_and_the_lost_retry_is_sent_again(stack):
    with Loopback() as loopback:
        # The first try fails; its retry waits in Redis's delay queue when Redis dies.
        loopback.route("/flaky", statuses=[503, 200])
        api = Api(stack)
        execution_id = api.start(
            "survive-redis",
            f"""
id: survive-redis
name: Redis dies while a retry waits in it
triggers: [{{type: webhook}}]
steps:
  - id: flaky
    type: http
    url: {loopback.url}/flaky
    retry: {{max: 2, backoff_ms: 4000, jitter: false}}
  - id: last
    type: http
    url: {loopback.url}/last
""",
        )
        wait_for(lambda: delayed_messages(stack) == 1, 30, "delayed retry in Redis", stack)
        assert loopback.count("/flaky") == 1
        server = stack.child("redis")

        with watching_health(stack) as health:
            server.kill()
            killed_at = time.monotonic()
            restarted = stack.wait_for_new_child("redis", server.pid, RESTARTED_WITHIN_S)
            restarted_s = time.monotonic() - killed_at
            wait_for(lambda: delayed_messages(stack) == 0, 10, "answer of the new Redis", stack)
            view = api.wait_until_ended(execution_id, stack)
            recovered_s = time.monotonic() - killed_at
            # Everything talks to the new Redis: the API's health check too.
            wait_for(lambda: health.statuses and health.statuses[-1] == 200, 15, "200", stack)

        # The API enqueues through the new Redis at once: no reconciler pass needed.
        fired_at = time.monotonic()
        after = api.wait_until_ended(api.fire("survive-redis"), stack)
        after_s = time.monotonic() - fired_at

    print(
        f"redis SIGKILL: restarted after {restarted_s:.1f} s, execution ended "
        f"{recovered_s:.1f} s after the kill; /healthz {len(health.statuses)} answers "
        f"({health.statuses.count(503)} of them 503), {len(health.failures)} without answer"
    )
    print(f"redis SIGKILL: the next execution took {after_s:.1f} s")
    assert view["status"] == "succeeded", view
    assert step(view, "flaky")["attempt"] == 2
    assert after["status"] == "succeeded" and after_s < 10, (after, after_s)
    assert loopback.count("/flaky") == 3 and loopback.count("/last") == 2
    assert restarted.pid != server.pid
    assert "redis killed by SIGKILL; restarting it in 500 ms" in stack.output()
    # The API answered every request; 503 only while Redis was away.
    assert health.failures == [] and set(health.statuses) <= {200, 503}, health
    assert stack.process.poll() is None
