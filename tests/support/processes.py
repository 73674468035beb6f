"""Real AisOpsFlow processes for integration tests, started and stopped as a test needs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from ops.processes import child_environ
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

REPO = Path(__file__).parents[2]

#: Every process started, so the test session can make sure none outlives it.
STARTED: list[Process] = []


class Process:
    """One ``aisopsflow <command>`` child in its own process group; output goes to a log file."""

    def __init__(self, settings: Settings, command: list[str], log_path: Path) -> None:
        self.settings = settings
        self.command = command
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Process:
        environ = child_environ(self.settings)
        environ["PYTHONPATH"] = str(REPO) + os.pathsep + environ.get("PYTHONPATH", "")
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", *self.command],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
        STARTED.append(self)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crashing host would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def kill_leftovers() -> int:
    """SIGKILL every started process group still running; returns how many there were."""
    left = [process for process in STARTED if process.process and process.process.poll() is None]
    for process in left:
        process.kill()
    return len(left)


def start_plugin(
    settings: Settings, name: str, log_path: Path, timeout: float = 30.0
) -> tuple[str, Process]:
    """Start ``aisopsflow plugin <name>`` on a free loopback port; its URL once ``/probe`` answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["plugin", name, "--host", "127.0.0.1", "--port", str(port)]
    process = Process(settings, command, log_path).start()
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {load_plugin_token(settings)}"}
    deadline = time.monotonic() + timeout
    while True:
        assert process.process and process.process.poll() is None, process.output()[-4000:]
        try:
            if requests.post(f"{url}/probe", headers=auth, timeout=2).status_code == 200:
                return url, process
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, process.output()[-4000:]
        time.sleep(0.1)
