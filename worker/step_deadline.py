"""A step's own time limit where no Dramatiq message carries it: steps the worker runs inline.

A condition planned inline (see ``worker.step_chain``) runs inside another step's
message, so that message's time limit is not the condition's ``timeout_seconds``.
:func:`step_deadline` gives the block the same treatment Dramatiq's TimeLimit
middleware gives a message: at the deadline, ``TimeLimitExceeded`` is raised in the
running thread. One watcher thread per process serves every deadline.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Iterator

from dramatiq.middleware.threading import raise_thread_exception
from dramatiq.middleware.time_limit import TimeLimitExceeded


class _Watcher:
    """Raises TimeLimitExceeded in each armed thread whose deadline passes."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.armed: dict[int, tuple[float, int]] = {}  # token -> (deadline ms, thread id)
        self.fired: set[int] = set()
        self.tokens = 0
        self.thread: threading.Thread | None = None

    def arm(self, timeout_ms: float) -> int:
        with self.condition:
            self.tokens += 1
            deadline = time.monotonic() * 1000 + timeout_ms
            self.armed[self.tokens] = (deadline, threading.get_ident())
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._watch, name="step-deadlines", daemon=True
                )
                self.thread.start()
            self.condition.notify()
            return self.tokens

    def disarm(self, token: int) -> bool:
        """Forget ``token``; True when its deadline had fired (any undelivered raise is undone)."""
        with self.condition:
            self.armed.pop(token, None)
            if token not in self.fired:
                return False
            self.fired.discard(token)
            # The raise may still be pending: the thread finished just as it fired.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(threading.get_ident()), ctypes.c_long(0)
            )
            return True

    def _watch(self) -> None:
        with self.condition:
            while True:
                now = time.monotonic() * 1000
                for token, (deadline, thread_id) in list(self.armed.items()):
                    if deadline <= now:
                        del self.armed[token]
                        self.fired.add(token)
                        raise_thread_exception(thread_id, TimeLimitExceeded)
                next_deadline = min((deadline for deadline, _ in self.armed.values()), default=None)
                wait_s = None if next_deadline is None else max(0.0, next_deadline - now) / 1000
                self.condition.wait(wait_s)


_WATCHER = _Watcher()


@contextlib.contextmanager
def step_deadline(timeout_ms: float) -> Iterator[None]:
    """Raise ``TimeLimitExceeded`` in this thread if the block runs longer than ``timeout_ms``.

    Like Dramatiq's own time limit it cannot interrupt a system call; a pure step
    makes none.
    """
    token = _WATCHER.arm(timeout_ms)
    try:
        yield
    finally:
        _WATCHER.disarm(token)
