"""The Dramatiq actors; thin wrappers that the engine issue extends."""

from __future__ import annotations

import logging

import dramatiq

log = logging.getLogger(__name__)


@dramatiq.actor(actor_name="aisopsflow.ping", max_retries=0)
def ping(payload: str = "") -> str:
    """Log and return ``payload``: proves that a worker consumes messages."""
    log.info("pong %s", payload)
    return payload
