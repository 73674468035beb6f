"""Enqueue work by actor name, so the API and the scheduler never import worker/.

A Dramatiq message is only a wake-up: the database holds the state, and the
reconciler re-sends anything whose message was lost.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.settings import Settings

#: Queue of the step actor.
STEPS_QUEUE = "steps"
#: Actor that runs one step run: ``run_step(step_run_id)``.
RUN_STEP = "aisopsflow.run_step"


class Dispatcher:
    """Publishes messages to the worker's Redis broker (publishing only: no middleware)."""

    def __init__(self, settings: Settings, *, broker: RedisBroker | None = None) -> None:
        self.broker = broker or RedisBroker(
            url=settings.resolved_redis_url,
            namespace=settings.redis_namespace,
            middleware=[],
        )

    def send(
        self,
        actor_name: str,
        *args: Any,
        queue_name: str = STEPS_QUEUE,
        delay_ms: int | None = None,
        **options: Any,
    ) -> dramatiq.Message:
        """Enqueue ``actor_name(*args)`` with message ``options`` (time_limit, max_retries, ...)."""
        message = dramatiq.Message(
            queue_name=queue_name,
            actor_name=actor_name,
            args=args,
            kwargs={},
            options=options,
        )
        return self.broker.enqueue(message, delay=delay_ms)
