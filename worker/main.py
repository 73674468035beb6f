"""What the ``dramatiq`` CLI loads: ``python -m dramatiq worker.main:setup``."""

from __future__ import annotations

import importlib

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.db import bind
from shared.settings import Settings, load_settings
from worker.broker import build_broker
from worker.step_runner import Runtime


def setup(settings: Settings | None = None) -> RedisBroker:
    """Build and install the broker, then declare the actors on it.

    Dramatiq calls this in every worker process. Settings are read here, not at import
    time, and the actors are imported only after the broker is installed because
    ``@dramatiq.actor`` binds to whatever broker is current when it runs.
    """
    settings = settings or load_settings()
    bind(settings.resolved_database_url)
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    actors = importlib.import_module("worker.actors")
    actors.use_runtime(Runtime.build(settings))
    kakao_actors = importlib.import_module("worker.kakao_actors")
    # A second call in one process (tests) finds the modules already imported: move
    # their actors onto the new broker, or they would keep sending to the old one.
    for actor in [*vars(actors).values(), *vars(kakao_actors).values()]:
        if isinstance(actor, dramatiq.Actor) and actor.broker is not broker:
            actor.broker = broker
            broker.declare_actor(actor)
    return broker
