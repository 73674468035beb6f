"""Child processes of `up`: each in its own process group, tied to our life, stopped whole."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

#: prctl(2) option: signal the child gets when the thread that started it dies.
PR_SET_PDEATHSIG = 1
#: How long a child gets to stop after SIGTERM before its whole group is killed, in ms.
DEFAULT_STOP_TIMEOUT_MS = 10_000
#: Pause between two checks while waiting for children, in milliseconds.
POLL_INTERVAL_MS = 100


def _death_signal_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when we die, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        # We may have died between fork and prctl; then no signal would ever come.
        if os.getppid() != parent:
            os._exit(1)

    return hook


class Child:
    """One named child process, leader of its own session and process group."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the leader, once started."""
        return self.process.pid if self.process else None

    def start(self, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start (or restart) the child with stdout and stderr merged into one pipe.

        The pre-exec hook runs between fork and exec, where a lock another thread held
        at the fork would never be released; it therefore only calls prctl, resolved
        before the fork, and getppid, and takes no lock. Start children from the main
        thread: the death signal follows the thread that forked, not the process.
        """
        self.process = subprocess.Popen(
            self.argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own session: a terminal's Ctrl-C reaches only `up`, which stops children in
            # order; and the group lets us kill grandchildren (gunicorn, dramatiq workers).
            start_new_session=True,
            preexec_fn=_death_signal_hook(),
        )
        return self.process

    def poll(self) -> int | None:
        """The leader's exit code, or None while it runs (or before it started)."""
        return self.process.poll() if self.process else None

    @property
    def running(self) -> bool:
        """True while the leader has not exited."""
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """Send SIGTERM to the leader only; it stops its own workers.

        Signalling the whole group would hand Dramatiq's worker processes a second
        SIGTERM (the leader forwards one), which they take as "exit now".
        """
        if self.running:
            assert self.process is not None
            try:
                self.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL everything left in the child's process group, then reap the leader."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is already empty
        self.process.wait()


def wait_all(children: Sequence[Child], timeout_ms: int, *, give_up: Callable[[], bool]) -> bool:
    """Wait until no child runs, for ``timeout_ms`` at most or until ``give_up()``.

    Returns True when every child has ended.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while any(child.running for child in children):
        if time.monotonic() >= deadline or give_up():
            return False
        time.sleep(POLL_INTERVAL_MS / 1000)
    return True


def stop_all(
    children: Sequence[Child],
    timeout_ms: int = DEFAULT_STOP_TIMEOUT_MS,
    *,
    give_up: Callable[[], bool] = lambda: False,
) -> list[Child]:
    """SIGTERM every leader, wait up to ``timeout_ms``, then SIGKILL each whole group.

    The groups are killed even when the leaders exited cleanly, so that no worker
    process a leader failed to reap is left behind. Returns the children whose leader
    was still running when the wait ended (empty when all stopped in time).
    """
    for child in children:
        child.terminate()
    wait_all(children, timeout_ms, give_up=give_up)
    late = [child for child in children if child.running]
    for child in children:
        child.kill_group()
    return late
