"""The only place that builds the Dramatiq broker and its middleware list."""

from __future__ import annotations

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from shared.settings import Settings


def build_middleware() -> list[Middleware]:
    """Dramatiq's default middleware, listed here so additions happen in one place."""
    return [AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()]


def build_broker(settings: Settings) -> RedisBroker:
    """A Redis broker on ``settings.resolved_redis_url`` with the middleware above."""
    return RedisBroker(
        url=settings.resolved_redis_url,
        namespace=settings.redis_namespace,
        middleware=build_middleware(),
    )
