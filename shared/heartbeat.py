"""The scheduler's heartbeat in Redis, written by the scheduler and read by /healthz."""

from __future__ import annotations

import redis

from shared.settings import Settings

#: Seconds after which a silent scheduler counts as down.
STALE_AFTER_SECONDS = 30


def last_tick_key(settings: Settings) -> str:
    """Redis key holding the scheduler's last tick (epoch seconds as text)."""
    return f"{settings.redis_namespace}:scheduler:last_tick"


def record_tick(client: redis.Redis, settings: Settings, now: float) -> None:
    """Store ``now`` (epoch seconds) as the last tick."""
    client.set(last_tick_key(settings), repr(now))


def scheduler_health(client: redis.Redis, settings: Settings, now: float) -> tuple[bool, str]:
    """(healthy, description). No tick yet is not an error (the scheduler may still be starting)."""
    raw = client.get(last_tick_key(settings))
    if raw is None:
        return True, "no tick yet"
    age = now - float(raw)
    if age > STALE_AFTER_SECONDS:
        return False, f"down: last tick {age:.0f} s ago"
    return True, "ok"
