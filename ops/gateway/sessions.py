"""The streams one gateway holds: a session per ``Connect`` call, the current one per runner.

A runner that renews its certificate opens a second stream before closing the
first; the newer session supersedes the older for dispatch and token rotation,
while the older one still delivers what the runner sends on it until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import grpc

from ops.gateway.auth import Principal
from ops.gateway.blocking import db_call
from ops.gateway.messages import unix_seconds
from ops.rpc import runner_pb2
from shared.models import utcnow
from shared.runners import presence, registry
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Close:
    """Queued to a session to end its stream: with ``code``, the runner sees that status."""

    code: grpc.StatusCode | None
    message: str = ""


@dataclass(eq=False)
class Session:
    """One open ``Connect`` stream: what it proved, its epoch, and what to send on it."""

    principal: Principal
    epoch: int
    outbox: asyncio.Queue[runner_pb2.CoreMessage | Close] = field(default_factory=asyncio.Queue)
    dispatch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    opened_at: float = field(default_factory=time.monotonic)
    #: time.monotonic() of the token's last rotation (see __post_init__).
    rotated_at: float = 0.0
    closed: bool = False
    #: Hash of the rotated-out token the runner came back with, kept valid by the next rotation.
    stale_token_hash: str | None = None
    #: Jobs this stream was told to stop (see JobsListener._cancel_ended).
    cancels_sent: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Rotation follows the token's age, not the stream's: a runner that reconnects
        # often still gets a new token on time. One that came back with the rotated-out
        # token never received the new one, so it gets another at once.
        if self.principal.previous_token:
            self.stale_token_hash = self.principal.token_hash
            self.rotated_at = float("-inf")
        elif self.principal.token_rotated_at is None:
            self.rotated_at = float("-inf")
        else:
            age = (utcnow() - self.principal.token_rotated_at).total_seconds()
            self.rotated_at = time.monotonic() - max(0.0, age)

    @property
    def runner_id(self) -> str:
        """The runner at the other end."""
        return self.principal.runner_id

    def send(self, message: runner_pb2.CoreMessage) -> bool:
        """Queue ``message`` for the runner; False when the stream is closing."""
        if self.closed:
            return False
        self.outbox.put_nowait(message)
        return True

    def close(self, code: grpc.StatusCode | None = None, message: str = "") -> None:
        """End the stream (after what is already queued), with ``code`` if given."""
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(Close(code, message))


class SessionTable:
    """Every live session of this gateway, and the current one of each runner."""

    def __init__(self) -> None:
        self.live: set[Session] = set()
        self.current: dict[str, Session] = {}

    def open(self, session: Session) -> Session | None:
        """Make ``session`` its runner's current one; returns the one it supersedes."""
        self.live.add(session)
        previous = self.current.get(session.runner_id)
        self.current[session.runner_id] = session
        return previous

    def remove(self, session: Session) -> None:
        """Forget an ended session (its runner keeps a newer current one, if any)."""
        self.live.discard(session)
        if self.current.get(session.runner_id) is session:
            del self.current[session.runner_id]

    def of(self, runner_id: str) -> Session | None:
        """The runner's current session on this gateway, if it has one."""
        return self.current.get(runner_id)

    def runner_ids(self) -> list[str]:
        """Runners with a current session here."""
        return list(self.current)

    def close_all(self, code: grpc.StatusCode, message: str) -> None:
        """End every stream (the gateway is stopping)."""
        for session in list(self.live):
            session.close(code, message)


async def touch_loop(sessions: SessionTable, stop: asyncio.Event) -> None:
    """Refresh ``last_seen_at`` of every connected runner each TOUCH_INTERVAL_SECONDS, in one UPDATE."""
    while not await _stopped(stop, presence.TOUCH_INTERVAL_SECONDS):
        try:
            await db_call(registry.touch, sessions.runner_ids())
        except Exception:  # noqa: BLE001 - the next round tries again; the loop must live
            log.exception("could not refresh the runners' last_seen_at")


async def rotation_loop(settings: Settings, sessions: SessionTable, stop: asyncio.Event) -> None:
    """Rotate each connected runner's session token every runner_token_rotation_seconds."""
    period = settings.runner_token_rotation_seconds
    grace = settings.runner_token_grace_seconds
    while not await _stopped(stop, min(5.0, period / 2)):
        now = time.monotonic()
        for session in list(sessions.current.values()):
            if session.closed or now - session.rotated_at < period:
                continue
            session.rotated_at = now
            # A runner that came back with its rotated-out token keeps that one valid.
            keep, session.stale_token_hash = session.stale_token_hash, None
            try:
                token = await db_call(
                    registry.rotate_token, session.runner_id, grace, keep_hash=keep
                )
            except Exception:  # noqa: BLE001 - tried again next period
                log.exception("could not rotate the session token of runner %s", session.runner_id)
                continue
            valid_until = utcnow() + timedelta(seconds=grace)
            session.send(
                runner_pb2.CoreMessage(
                    token_rotation=runner_pb2.TokenRotation(
                        token=token,
                        previous_valid_until=unix_seconds(valid_until),
                    )
                )
            )
            log.info("rotated the session token of runner %s", session.runner_id)


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop``; True when stopping."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
