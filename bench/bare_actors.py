"""Bare Dramatiq twins of the engine's steps, for ``bench/engine.py``: chains of no-op actors.

Run as ``dramatiq bench.bare_actors:setup`` with the same ``AISOPSFLOW_*`` settings as
the platform worker (another namespace); the broker and its middleware come from
``worker.broker``, so the only difference from the platform is the engine itself.
"""

from __future__ import annotations

import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.settings import Settings, load_settings
from worker.broker import build_broker

#: Actor that runs one link of a chain: ``hop(chain_id, remaining, record_start=False)``.
HOP = "bench.hop"
#: Queue of HOP (the platform's steps queue has its own name in its own namespace).
CHAIN_QUEUE = "bench"
#: Actor on the default queue, so a bare process polls as many queues as a platform one.
NOOP = "bench.noop"


def done_key(namespace: str) -> str:
    """Redis hash: chain id -> epoch seconds when its last actor ended."""
    return f"{namespace}:bench:done"


def started_key(namespace: str) -> str:
    """Redis hash: chain id -> epoch seconds when its first actor started (if asked to record it)."""
    return f"{namespace}:bench:started"


def setup(settings: Settings | None = None) -> RedisBroker:
    """Build and install the broker, then declare the actors on it (what the CLI calls)."""
    settings = settings or load_settings()
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    finished = done_key(settings.redis_namespace)
    started = started_key(settings.redis_namespace)

    def hop(chain_id: str, remaining: int, record_start: bool = False) -> None:
        """Send the next link, or record that the chain ended."""
        if record_start:
            broker.client.hset(started, chain_id, repr(time.time()))
        if remaining > 1:
            hop_actor.send(chain_id, remaining - 1)
        else:
            broker.client.hset(finished, chain_id, repr(time.time()))

    def noop() -> None:
        """Nothing: only declares the default queue."""

    hop_actor = dramatiq.actor(hop, actor_name=HOP, queue_name=CHAIN_QUEUE, max_retries=0)
    dramatiq.actor(noop, actor_name=NOOP, max_retries=0)
    return broker
