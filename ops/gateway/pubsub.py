"""Follow one Redis channel from the event loop, reconnecting after a failure."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio

log = logging.getLogger(__name__)

#: Wait before subscribing again after Redis failed, in seconds (polling covers the gap).
RESUBSCRIBE_DELAY_SECONDS = 2.0


async def follow(
    redis_url: str,
    channel: str,
    handle: Callable[[dict[str, Any]], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Call ``handle`` with each JSON message published on ``channel`` until ``stop``."""
    while not stop.is_set():
        client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=2)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        document = json.loads(message["data"])
                    except ValueError:
                        log.warning("ignored a message on %s that is not JSON", channel)
                        continue
                    if isinstance(document, dict):
                        await handle(document)
        except (redis.RedisError, OSError) as error:
            log.warning(
                "lost the subscription to %s (%s); polling until it is back", channel, error
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=RESUBSCRIBE_DELAY_SECONDS)
            except TimeoutError:
                pass
        finally:
            await client.aclose()
