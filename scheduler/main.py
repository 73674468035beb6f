"""The scheduler process: fires due cron slots, reconciles the engine, and beats a heartbeat."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import redis

from scheduler.cron_source import CronSource
from scheduler.due import Schedule
from scheduler.firing import fire
from scheduler.loop import DEFAULT_INTERVAL_MS, run
from shared.db import bind, connection
from shared.dispatch import Dispatcher
from shared.engine.reconciler import reconcile_once
from shared.heartbeat import record_tick
from shared.keyring import load_keys
from shared.models import Approval
from shared.notifications import deliver
from shared.plugin_client import PluginClient
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Timeout of every Redis call, in milliseconds; blocking I/O must not hang the loop.
REDIS_TIMEOUT_MS = 5000
#: Seconds one escalation send may take per target.
ESCALATION_SEND_TIMEOUT_SECONDS = 10
#: Milliseconds between two engine reconciliation passes.
RECONCILE_INTERVAL_MS = 1000


def connect(settings: Settings) -> redis.Redis:
    """A Redis client for ``settings.resolved_redis_url`` with bounded socket timeouts."""
    return redis.Redis.from_url(
        settings.resolved_redis_url,
        socket_timeout=REDIS_TIMEOUT_MS / 1000,
        socket_connect_timeout=REDIS_TIMEOUT_MS / 1000,
    )


class Scheduler:
    """One tick: refresh the cron triggers, fire what is due, reconcile, record the heartbeat."""

    def __init__(self, settings: Settings, client: redis.Redis, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.client = client
        self.dispatcher = dispatcher
        self.schedule = Schedule()
        self.source = CronSource(self.schedule)
        self._last_reconcile = 0.0
        self.plugins = PluginClient(settings)

    def tick(self, now: float) -> int:
        """Run one tick at ``now`` (epoch seconds); returns the executions started."""
        moment = datetime.fromtimestamp(now, tz=timezone.utc)
        with connection():
            self.source.refresh(moment)
            started = fire(self.dispatcher, self.schedule.due(moment), moment, self.source.specs)
            if (now - self._last_reconcile) * 1000 >= RECONCILE_INTERVAL_MS:
                self._last_reconcile = now
                reconcile_once(self.dispatcher, notify=self.escalate)
        record_tick(self.client, self.settings, now)
        return started

    def escalate(self, approval: Approval, rung: dict[str, Any]) -> dict[str, Any]:
        """Send an escalation rung: the approval message, with buttons, to the rung's targets."""
        delivery = deliver(
            self.plugins,
            approval.tenant_id,
            list(rung.get("notify") or []),
            {
                "title": f"Escalated approval: {approval.step_id}",
                "message": approval.message,
                "severity": "critical",
                "execution_id": approval.execution_id,
                "step_id": approval.step_id,
            },
            timeout_seconds=ESCALATION_SEND_TIMEOUT_SECONDS,
            approval=approval,
            secret_key=load_keys(self.settings)[0],
        )
        return delivery.as_output()


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
    bind(settings.resolved_database_url)
    client = connect(settings)
    scheduler = Scheduler(settings, client, Dispatcher(settings))
    log.info("scheduler started, ticking every %d ms", interval_ms)
    try:
        ticks = run(scheduler.tick, clock=clock, stop=stop, interval_ms=interval_ms)
    finally:
        client.close()
    log.info("scheduler stopped after %d ticks", ticks)
    return 0
