"""The scheduler process: records each tick in Redis until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

import redis

from scheduler.loop import DEFAULT_INTERVAL_MS, run
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Redis key holding the time of the last tick, epoch seconds as a decimal string.
LAST_TICK_KEY = "aisopsflow:scheduler:last_tick"
#: Timeout of every Redis call, in milliseconds; blocking I/O must not hang the loop.
REDIS_TIMEOUT_MS = 5000


def connect(settings: Settings) -> redis.Redis:
    """A Redis client for ``settings.resolved_redis_url`` with bounded socket timeouts."""
    return redis.Redis.from_url(
        settings.resolved_redis_url,
        socket_timeout=REDIS_TIMEOUT_MS / 1000,
        socket_connect_timeout=REDIS_TIMEOUT_MS / 1000,
    )


def make_tick(
    client: redis.Redis, reconcile: Callable[[], object] | None = None
) -> Callable[[float], None]:
    """The tick: store ``now`` under LAST_TICK_KEY, then run one reconciliation pass.

    Due cron triggers come in a later issue.
    """

    def tick(now: float) -> None:
        client.set(LAST_TICK_KEY, repr(now))
        if reconcile is not None:
            reconcile()

    return tick


def make_reconcile(settings: Settings) -> Callable[[], object]:
    """One engine reconciliation pass per call, on this process's database connection."""
    from shared.db import bind, connection
    from shared.dispatch import Dispatcher
    from shared.engine.reconciler import reconcile_once

    bind(settings.resolved_database_url)
    dispatcher = Dispatcher(settings)

    def reconcile() -> object:
        with connection():
            return reconcile_once(dispatcher)

    return reconcile


def install_stop_handlers(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM and SIGINT so the loop ends after the current tick."""

    def handle(signum: int, frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    stop: threading.Event | None = None,
    interval_ms: int = DEFAULT_INTERVAL_MS,
) -> int:
    """Run the scheduler in the foreground; returns 0 once stopped.

    Without ``stop``, one is created and bound to SIGTERM/SIGINT (main thread only).
    """
    if stop is None:
        stop = threading.Event()
        install_stop_handlers(stop)
    client = connect(settings)
    log.info("scheduler started, ticking every %d ms", interval_ms)
    try:
        ticks = run(
            make_tick(client, make_reconcile(settings)),
            clock=clock,
            stop=stop,
            interval_ms=interval_ms,
        )
    finally:
        client.close()
    log.info("scheduler stopped after %d ticks", ticks)
    return 0
