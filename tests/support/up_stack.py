"""A real `aisopsflow up` for tests: started on a temp data dir, watched, never left behind."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
#: The issue's promise: /healthz answers within 15 s of `up` starting.
HEALTHY_WITHIN_S = 15
#: How long a test waits for a stack to be healthy at all (a loaded CI box is slow).
STARTUP_TIMEOUT_S = 60
#: `up` gives children 10 s after SIGTERM, then kills; allow a little more.
STOPPED_WITHIN_S = 15
#: What identifies each child of `up` on its command line.
CHILD_MARKS = {
    "redis": "redis-server",
    "api": "api.wsgi:app",
    "worker": "dramatiq",
    "scheduler": "scheduler",
}


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
        # Below Linux's ephemeral range (32768-60999): a client connection made meanwhile
        # by any test could otherwise take a picked port before `up` binds it.
        base = random.randint(20_000, 32_000 - count)
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
    #: Seconds from starting `up` until /healthz first answered 200.
    healthy_after_s: float = 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def child(self, name: str) -> psutil.Process:
        """The direct child of `up` running ``name`` (redis, api, worker, scheduler)."""
        mark = CHILD_MARKS[name]
        children = psutil.Process(self.process.pid).children()
        found = [p for p in children if still_alive(p) and mark in " ".join(p.cmdline())]
        assert len(found) == 1, f"{name}: {[p.cmdline() for p in children]}"
        return found[0]

    def wait_for_new_child(self, name: str, old_pid: int, timeout_s: float) -> psutil.Process:
        """The child ``name`` once it runs with a pid other than ``old_pid``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"`up` exited:\n{self.output()[-4000:]}"
            try:
                child = self.child(name)
                if child.pid != old_pid:
                    return child
            except (AssertionError, psutil.Error):
                pass  # between the old one's death and the new one's start
            time.sleep(0.1)
        pytest.fail(f"{name} was not restarted within {timeout_s} s:\n{self.output()[-4000:]}")


def wait_healthy(stack: RunningStack, started: float) -> float:
    """Seconds from ``started`` until /healthz answers 200 (at most STARTUP_TIMEOUT_S)."""
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        assert stack.process.poll() is None, f"`up` exited early:\n{stack.output()}"
        try:
            if requests.get(f"{stack.api}/healthz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"/healthz did not answer 200 within {STARTUP_TIMEOUT_S} s:\n{stack.output()}")


def up_environ(data_dir: Path, api_port: int, plugin_base_port: int) -> dict[str, str]:
    """The environment of `up`: ours without AISOPSFLOW_*, plus a data dir and ports."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AISOPSFLOW_")}
    gateway_ports = free_port_range(2)
    environ.update(
        AISOPSFLOW_DATA_DIR=str(data_dir),
        AISOPSFLOW_API_PORT=str(api_port),
        AISOPSFLOW_PLUGIN_BASE_PORT=str(plugin_base_port),
        # `up` runs the runner gateway too: its two ports must not collide between tests.
        AISOPSFLOW_GATEWAY_ENROLL_PORT=str(gateway_ports),
        AISOPSFLOW_GATEWAY_PORT=str(gateway_ports + 1),
        AISOPSFLOW_BOOTSTRAP_ADMIN_EMAIL="admin@example.com",
        AISOPSFLOW_BOOTSTRAP_ADMIN_PASSWORD="admin-password-1",
        AISOPSFLOW_API_WORKERS="2",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")])),
    )
    return environ


def start_up(environ: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    """`aisopsflow up` with ``environ``, its output in ``folder``/up.log."""
    with open(folder / "up.log", "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "up"],
            cwd=folder,  # no .env of the developer's is read
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop_up(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM `up`, SIGKILL it if it does not stop in time (its children follow it)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOPPED_WITHIN_S)
        except subprocess.TimeoutExpired:
            process.kill()  # its children follow through PR_SET_PDEATHSIG
            process.wait()


def descendants(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def still_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_gone(processes: list[psutil.Process], output: str) -> None:
    _, alive = psutil.wait_procs(processes, timeout=5)
    alive = [p for p in alive if still_alive(p)]
    assert alive == [], f"left behind: {[p.pid for p in alive]}\n{output}"


@dataclass
class HealthWatch:
    """/healthz polled in a thread: the status of every answer, and every request that got none."""

    url: str
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def poll(self, interval_s: float, timeout_s: float) -> None:
        while not self.stop.is_set():
            try:
                self.statuses.append(requests.get(self.url, timeout=timeout_s).status_code)
            except requests.RequestException as error:
                self.failures.append(f"{time.monotonic():.1f}: {error!r}")
            self.stop.wait(interval_s)


@contextmanager
def watching_health(stack: RunningStack, interval_s: float = 0.1) -> Iterator[HealthWatch]:
    """Poll the stack's /healthz until the block ends; a request may take 10 s to answer."""
    watch = HealthWatch(f"{stack.api}/healthz")
    thread = threading.Thread(target=watch.poll, args=(interval_s, 10.0), daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join(timeout=15)
