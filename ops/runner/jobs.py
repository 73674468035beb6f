"""Run one verified job: a process group, its two output streams as numbered chunks, a timeout.

The job runs in its own session (``start_new_session=True``), so its process
group id is its pid and everything it starts can be killed together: at the
timeout, on a cancel, and when the job ends (leftover background processes are
not left running on the host, as a CI runner's job cleanup does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ops.runner.chunks import Chunker, ChunkSink
from ops.runner.groups import group_alive, kill_group
from ops.runner.verify import Job

#: How long a job's pipes may stay open after its main process ended, in milliseconds.
PIPE_DRAIN_MS = 1_000
#: PATH of a job that sets none and runs on a runner that has none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Variables a job inherits from the runner's environment; its own ``env`` goes on top.
INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def now_ms() -> int:
    """Unix time in milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Outcome:
    """How a job ended (the fields of its signed result, except the ids and ``last_seq``)."""

    status: str
    exit_code: int | None
    error: str
    started_at_ms: int
    ended_at_ms: int
    duration_ms: int
    stdout_bytes: int
    stderr_bytes: int
    stdout_capped: bool
    stderr_capped: bool


def job_environment(job: Job, base: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment (a few of the runner's variables) with the job's ``env`` on top."""
    base = dict(os.environ) if base is None else base
    env = {name: base[name] for name in INHERITED_ENV if name in base}
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    env["AISOPSFLOW_JOB_ID"] = job.job_id
    env.update(job.env)
    return env


class _JobProtocol(asyncio.SubprocessProtocol):
    """Feeds both pipes to the chunker and notes the exit, without waiting for the pipes.

    ``Process.wait()`` of asyncio streams only returns once every pipe is closed
    (Python 3.11), so a background child holding stdout would hide the exit.
    """

    def __init__(self, chunker: Chunker) -> None:
        self._chunker = chunker
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._chunker.add("stdout" if fd == 1 else "stderr", data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class JobRun:
    """One job's process group, from start to its Outcome."""

    def __init__(
        self,
        job: Job,
        *,
        sink: ChunkSink,
        max_output_bytes: int,
        kill_grace_ms: int,
        on_started: Callable[[int], None] | None = None,
    ) -> None:
        self.job = job
        self._chunker = Chunker(sink, max_output_bytes)
        self._kill_grace_ms = kill_grace_ms
        self._on_started = on_started
        self._stop_reason: str | None = None
        self._stopped = asyncio.Event()

    def cancel(self, reason: str) -> None:
        """Stop the job (its result says ``failed`` with ``cancelled: <reason>``)."""
        if self._stop_reason is None:
            self._stop_reason = f"cancelled: {reason}" if reason else "cancelled"
        self._stopped.set()

    def abandon(self, reason: str) -> None:
        """Stop the job because the runner stops (its result says ``lost``)."""
        if self._stop_reason is None:
            self._stop_reason = f"lost: {reason}"
        self._stopped.set()

    async def _kill(self, pgid: int) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after the grace period."""
        if not kill_group(pgid, signal.SIGTERM):
            return
        deadline = time.monotonic() + self._kill_grace_ms / 1000
        while time.monotonic() < deadline and group_alive(pgid):
            await asyncio.sleep(0.05)
        kill_group(pgid, signal.SIGKILL)

    def _command(self, script_dir: str) -> list[str]:
        if self.job.argv:
            return list(self.job.argv)
        # A script goes to a file rather than `-c`, so its size is not bounded by one argument's.
        path = Path(script_dir) / "job-script"
        path.write_text(self.job.script or "")
        return [self.job.shell or "/bin/sh", str(path)]

    async def run(self) -> Outcome:
        """Run the job to its end; never raises for the job's own failures."""
        started = now_ms()
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(prefix="aisopsflow-job-") as script_dir:
            try:
                transport, protocol = await loop.subprocess_exec(
                    lambda: _JobProtocol(self._chunker),
                    *self._command(script_dir),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=job_environment(self.job),
                    cwd=self.job.cwd or None,
                    start_new_session=True,
                )
            except OSError as error:
                return self._outcome("failed", None, f"cannot start the command: {error}", started)
            try:
                return await self._supervise(transport, protocol, started)
            finally:
                transport.close()

    async def _supervise(
        self, transport: asyncio.SubprocessTransport, protocol: _JobProtocol, started: int
    ) -> Outcome:
        pgid = transport.get_pid()  # a new session's leader: its pid is the group id
        if self._on_started is not None:
            self._on_started(pgid)
        stopper = asyncio.ensure_future(self._stopped.wait())
        timeout_s = self.job.timeout_seconds
        done, _ = await asyncio.wait(
            {protocol.exited, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        stopper.cancel()
        exited = protocol.exited in done
        if not exited:
            await self._kill(pgid)
            await protocol.exited
        # Give the pipes a moment to drain, then end leftovers (a background child holding them).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.drained), PIPE_DRAIN_MS / 1000)
        kill_group(pgid, signal.SIGKILL)
        # Killed holders close their pipes at once; only an escaped (setsid) process keeps them.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.drained), PIPE_DRAIN_MS / 1000)
        self._chunker.flush()
        code = transport.get_returncode()
        if not done:
            return self._outcome("timed_out", None, f"timed out after {timeout_s} s", started)
        if self._stop_reason is not None and not exited:
            status = "lost" if self._stop_reason.startswith("lost: ") else "failed"
            return self._outcome(status, None, self._stop_reason.removeprefix("lost: "), started)
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return self._outcome("failed", 128 - code, f"killed by {name}", started)
        return self._outcome("succeeded" if code == 0 else "failed", code, "", started)

    def _outcome(self, status: str, exit_code: int | None, error: str, started: int) -> Outcome:
        ended = now_ms()
        chunker = self._chunker
        return Outcome(
            status=status,
            exit_code=exit_code,
            error=error,
            started_at_ms=started,
            ended_at_ms=ended,
            duration_ms=ended - started,
            stdout_bytes=chunker.total["stdout"],
            stderr_bytes=chunker.total["stderr"],
            stdout_capped=chunker.capped("stdout"),
            stderr_capped=chunker.capped("stderr"),
        )
