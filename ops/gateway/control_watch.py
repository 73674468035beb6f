"""Cut the streams of denied, revoked, retired or expired runners within seconds.

A change is announced on the control channel (any gateway may hold the
runner's stream) and bumps ``RunnerControl.version``, which is polled every 2 s
as the backstop for a lost message. Either way the sessions are checked against
the database, so a message only says "look now".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from ops.gateway.blocking import db_call
from ops.gateway.pubsub import follow
from ops.gateway.sessions import Session, SessionTable
from shared.models import utcnow
from shared.runners import denylist, registry, signals
from shared.settings import Settings

log = logging.getLogger(__name__)

#: How often RunnerControl.version is read, in seconds.
POLL_INTERVAL_SECONDS = 2.0


class ControlWatch:
    """Ends the sessions the denylist, revocations or certificate expiry no longer allow."""

    def __init__(self, settings: Settings, sessions: SessionTable) -> None:
        self.settings = settings
        self.sessions = sessions
        self.version: int | None = None
        self.lock = asyncio.Lock()

    async def check(self, sessions: list[Session] | None = None) -> int:
        """Close every live session (or these) that may no longer stay open; returns how many were closed."""
        async with self.lock:
            candidates = self.sessions.live if sessions is None else sessions
            live = [session for session in candidates if not session.closed]
            if not live:
                return 0
            refusals = await db_call(
                registry.standing_refusals,
                [(session.runner_id, session.principal.fingerprint) for session in live],
            )
            closed = 0
            for session in live:
                reason = refusals.get((session.runner_id, session.principal.fingerprint))
                if reason is not None and not session.closed:
                    log.warning("cutting the stream of runner %s: %s", session.runner_id, reason)
                    session.close(grpc.StatusCode.PERMISSION_DENIED, reason)
                    closed += 1
            return closed

    def close_expired(self) -> int:
        """Close sessions whose certificate has expired (TLS checked it only at the handshake)."""
        now = utcnow()
        closed = 0
        for session in list(self.sessions.live):
            if not session.closed and session.principal.not_after <= now:
                log.info("ending the stream of runner %s: certificate expired", session.runner_id)
                session.close(grpc.StatusCode.UNAUTHENTICATED, "certificate expired")
                closed += 1
        return closed

    async def _on_message(self, message: dict[str, Any]) -> None:
        try:
            await self.check()
        except Exception:  # noqa: BLE001 - the poll checks again
            log.exception("could not check the runners named by a control message")

    async def poll(self, stop: asyncio.Event) -> None:
        """Every POLL_INTERVAL_SECONDS, check the sessions when the control version moved."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=POLL_INTERVAL_SECONDS)
                return
            except TimeoutError:
                pass
            self.close_expired()
            try:
                version = await db_call(denylist.control_version)
                if version != self.version:
                    await self.check()
                    self.version = version
            except Exception:  # noqa: BLE001 - tried again next round
                log.exception("could not read the runner control version")

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the control channel and poll until ``stop``."""
        channel = signals.control_channel(self.settings)
        await asyncio.gather(
            follow(self.settings.resolved_redis_url, channel, self._on_message, stop),
            self.poll(stop),
        )
