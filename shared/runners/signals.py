"""Redis channels that tell gateway processes about new jobs and denylist changes.

A message is only a nudge: the database holds the state, and gateways also
poll it (queued jobs of their runners, ``RunnerControl.version``), so a lost
message delays, never loses, a dispatch or a denial.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

import redis

from shared.settings import Settings

log = logging.getLogger(__name__)


def jobs_channel(settings: Settings) -> str:
    """Channel carrying ``{"runner_id": ..., "job_id": ...}`` for each job queued."""
    return f"{settings.redis_namespace}:runners:jobs"


def control_channel(settings: Settings) -> str:
    """Channel carrying ``{"version": n, "runner_ids": [...]}`` after a denial, revocation or retirement."""
    return f"{settings.redis_namespace}:runners:control"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def client(settings: Settings) -> redis.Redis:
    """A Redis client for these channels (one per URL and process)."""
    return _client(settings.resolved_redis_url)


def publish(settings: Settings, channel: str, message: dict[str, Any]) -> None:
    """Publish ``message``; a failure is logged, not raised (gateways poll as a backstop)."""
    try:
        client(settings).publish(channel, json.dumps(message))
    except redis.RedisError:
        log.warning("could not publish to %s; gateways will see it on their next poll", channel)
