"""Real AisOpsFlow processes for integration tests, started and stopped as a test needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ops.processes import child_environ
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
