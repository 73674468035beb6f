"""A clocked loop: call ``tick(now)`` once per interval until a stop event is set.

The clock is an argument (huey's ``loop(now=None)``) so tests step through time
without sleeping: the loop only waits for as long as the clock says is left.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Time between two ticks, in milliseconds.
DEFAULT_INTERVAL_MS = 1000


def next_tick_at(scheduled: float, now: float, interval_ms: int) -> float:
    """The first slot after ``scheduled`` that is not before ``now`` (epoch seconds).

    Slots stay on the grid started by the first tick, so a slow tick does not make the
    cadence drift; slots missed while a tick ran long are skipped, not replayed in a burst.
    """
    interval = interval_ms / 1000
    steps = max(1, math.ceil((now - scheduled) / interval))
    return scheduled + steps * interval


def run(
    tick: Callable[[float], object],
    *,
    clock: Callable[[], float] = time.time,
    stop: threading.Event,
    interval_ms: int = DEFAULT_INTERVAL_MS,
) -> int:
    """Call ``tick(now)`` every ``interval_ms`` milliseconds until ``stop`` is set.

    ``now`` is ``clock()`` in epoch seconds. An exception from ``tick`` is logged and
    the loop goes on, because one failed tick (Redis briefly away) must not stop the
    scheduler. Returns the number of ticks made.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms={interval_ms!r}: expected a positive number of milliseconds")
    ticks = 0
    due = clock()
    while not stop.is_set():
        now = clock()
        if now >= due:
            try:
                tick(now)
            except Exception:
                log.exception("scheduler tick at %.3f failed", now)
            ticks += 1
            due = next_tick_at(due, clock(), interval_ms)
        stop.wait(max(0.0, due - clock()))
    return ticks
