"""The Kakao actor: send a queued fallback (a delivery the provider reported failed, or a send_error fallback a dead worker left queued)."""

from __future__ import annotations

import dramatiq

from shared.db import connection
from shared.kakao.fallback import KAKAO_FALLBACK, KAKAO_QUEUE, send_delivery_fallback
from worker.actors import runtime


@dramatiq.actor(actor_name=KAKAO_FALLBACK, queue_name=KAKAO_QUEUE, max_retries=0)
def kakao_fallback(message_id: str) -> None:
    """Send the fallback of one kakao_messages row; at most once (no retries: see the claim)."""
    with connection():
        send_delivery_fallback(runtime().plugins, message_id)
