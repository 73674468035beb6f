"""`aisopsflow up` end to end: a real stack on an empty data dir, stopped without orphans."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from ops.processes import PLUGIN_NAMES

REPO = Path(__file__).resolve().parents[2]
#: The issue's promise: /healthz answers within 15 s of `up` starting.
HEALTHY_WITHIN_S = 15
#: `up` gives children 10 s after SIGTERM, then kills; allow a little more.
STOPPED_WITHIN_S = 15


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(200):
        base = random.randint(20_000, 60_000 - count)
        if all(port_is_free(base + offset) for offset in range(count)):
            return base
    raise RuntimeError("no free port range found")


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    api: str
    plugin_base_port: int
    data_dir: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_healthy(stack: RunningStack, started: float) -> None:
    while time.monotonic() - started < HEALTHY_WITHIN_S:
        assert stack.process.poll() is None, f"`up` exited early:\n{stack.output()}"
        try:
            if requests.get(f"{stack.api}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"/healthz did not answer 200 within {HEALTHY_WITHIN_S} s:\n{stack.output()}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    """`up` on an empty data dir, no Redis configured, healthy; killed if a test leaves it."""
    api_port = free_port_range(1)
    plugin_base_port = free_port_range(len(PLUGIN_NAMES))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AISOPSFLOW_")}
    environ.update(
        AISOPSFLOW_DATA_DIR=str(tmp_path / "data"),
        AISOPSFLOW_API_PORT=str(api_port),
        AISOPSFLOW_PLUGIN_BASE_PORT=str(plugin_base_port),
        AISOPSFLOW_BOOTSTRAP_ADMIN_EMAIL="admin@example.com",
        AISOPSFLOW_BOOTSTRAP_ADMIN_PASSWORD="admin-password-1",
        AISOPSFLOW_API_WORKERS="2",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")])),
    )
    log = tmp_path / "up.log"
    started = time.monotonic()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "up"],
            cwd=tmp_path,  # no .env of the developer's is read
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = RunningStack(
        process, f"http://127.0.0.1:{api_port}", plugin_base_port, tmp_path / "data", log
    )
    children: list[psutil.Process] = []
    try:
        wait_healthy(running, started)
        children = descendants(process)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOPPED_WITHIN_S)
            except subprocess.TimeoutExpired:
                process.kill()  # its children follow through PR_SET_PDEATHSIG
                process.wait()
        psutil.wait_procs(children, timeout=STOPPED_WITHIN_S)


def descendants(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(process.pid).children(recursive=True)


def still_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_gone(processes: list[psutil.Process], output: str) -> None:
    _, alive = psutil.wait_procs(processes, timeout=5)
    alive = [p for p in alive if still_alive(p)]
    assert alive == [], f"left behind: {[p.pid for p in alive]}\n{output}"


def test_up_serves_everything_and_stops_cleanly_on_sigterm(stack):
    token = (stack.data_dir / "plugin.token").read_text().strip()
    for index, name in enumerate(PLUGIN_NAMES):
        url = f"http://127.0.0.1:{stack.plugin_base_port + index}/probe"
        assert requests.post(url, timeout=5).status_code == 401
        answer = requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert answer.status_code == 200
        assert answer.json()["plugin"] == name
    login = requests.post(
        f"{stack.api}/api/login",
        json={"email": "admin@example.com", "password": "admin-password-1"},
        timeout=5,
    )
    assert login.status_code == 200
    providers = requests.get(
        f"{stack.api}/api/kakao/providers",
        headers={"Authorization": f"Bearer {login.json()['token']}"},
        timeout=5,
    ).json()
    mock_url = f"http://127.0.0.1:{stack.plugin_base_port + PLUGIN_NAMES.index('kakao-mock')}"
    assert [(p["id"], p["auth"], p["base_url"]) for p in providers] == [
        ("mock", "plugin_token", mock_url)
    ]
    children = descendants(stack.process)
    names = " ".join(" ".join(p.cmdline()) for p in children)
    assert "redis-server" in names and "gunicorn" in names and "dramatiq" in names

    began = time.monotonic()
    stack.process.send_signal(signal.SIGTERM)
    code = stack.process.wait(timeout=STOPPED_WITHIN_S)

    output = stack.output()
    assert code == 0, output
    assert time.monotonic() - began < STOPPED_WITHIN_S
    assert_all_gone(children, output)
    assert not (stack.data_dir / "redis.sock").exists()
    assert "AisOpsFlow is up." in output
    assert "admin@example.com" in output
    for prefix in ("redis", "api", "worker", "scheduler", "plugin-kakao-mock", "up"):
        assert f"\n{prefix.ljust(17)} | " in output


def test_a_message_sent_by_name_reaches_the_worker_of_up(stack):
    import dramatiq

    from shared.settings import Settings
    from worker.broker import build_broker

    broker = build_broker(Settings(data_dir=stack.data_dir))
    broker.enqueue(dramatiq.Message(queue_name="default", actor_name="aisopsflow.ping",
                                    args=("through-up",), kwargs={}, options={}))  # fmt: skip
    broker.close()

    deadline = time.monotonic() + 15
    while "pong through-up" not in stack.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "pong through-up" in stack.output()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs PR_SET_PDEATHSIG")
def test_children_die_with_up_even_when_it_is_killed(stack):
    children = descendants(stack.process)
    assert len(children) >= 1 + 3 + len(PLUGIN_NAMES)

    stack.process.kill()
    stack.process.wait()

    assert_all_gone(children, stack.output())


def test_a_crashing_child_stops_the_stack_with_an_error(stack):
    scheduler = next(p for p in descendants(stack.process) if "scheduler" in p.cmdline())
    children = descendants(stack.process)

    scheduler.kill()
    code = stack.process.wait(timeout=STOPPED_WITHIN_S)

    assert code == 1
    assert "scheduler exited unexpectedly" in stack.output()
    assert_all_gone(children, stack.output())
