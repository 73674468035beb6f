"""The fallback a failed delivery event triggers, sent by a worker actor at most once per message."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from shared import audit
from shared.db import write_transaction
from shared.dispatch import Dispatcher
from shared.kakao.messages import record_fallback
from shared.kakao.notify import fallback_note
from shared.models import KakaoMessage, utcnow
from shared.notifications import Delivery, deliver
from shared.plugin_client import PluginClient

log = logging.getLogger(__name__)

#: The worker actor that sends one message's delivery-failed fallback: ``(message_id)``.
KAKAO_FALLBACK = "aisopsflow.kakao_fallback"
#: Its queue.
KAKAO_QUEUE = "kakao"
#: Time a fallback send may take per target, in seconds.
FALLBACK_SEND_TIMEOUT_SECONDS = 30.0
#: Milliseconds a fallback may stay queued before the reconciler enqueues it again.
REQUEUE_AFTER_MS = 30_000
#: Most fallbacks re-enqueued in one reconciler pass.
REQUEUE_BATCH_SIZE = 200


def enqueue(dispatcher: Dispatcher, message_ids: list[str]) -> None:
    """Enqueue the fallback actor for each message; a failure is logged, the reconciler retries."""
    for message_id in message_ids:
        try:
            dispatcher.send(KAKAO_FALLBACK, message_id, queue_name=KAKAO_QUEUE)
        except Exception:  # noqa: BLE001 - the row stays queued; requeue_lost sends it later
            log.warning(
                "could not enqueue the fallback of kakao message %s", message_id, exc_info=True
            )


def requeue_lost(dispatcher: Dispatcher, now: datetime) -> int:
    """Enqueue again fallbacks queued over REQUEUE_AFTER_MS ago (a lost message); how many.

    A duplicate message is harmless: only one claim succeeds.
    """
    before = now - timedelta(milliseconds=REQUEUE_AFTER_MS)
    ids = [
        row.id
        for row in KakaoMessage.select(KakaoMessage.id)
        .where(KakaoMessage.fallback_status == "queued", KakaoMessage.updated_at < before)
        .limit(REQUEUE_BATCH_SIZE)
    ]
    if ids:
        with write_transaction():
            KakaoMessage.update(updated_at=now).where(KakaoMessage.id.in_(ids)).execute()
        enqueue(dispatcher, ids)
    return len(ids)


def claim(message_id: str) -> KakaoMessage | None:
    """Move a queued fallback to ``sending``; None when it is not queued (sent or claimed already)."""
    with write_transaction():
        claimed = (
            KakaoMessage.update(fallback_status="sending", updated_at=utcnow())
            .where(KakaoMessage.id == message_id, KakaoMessage.fallback_status == "queued")
            .execute()
        )
    return KakaoMessage.get_by_id(message_id) if claimed else None


def send_delivery_fallback(plugins: PluginClient, message_id: str) -> Delivery | None:
    """Send the fallback of a message whose delivery failed; None when there was none to send.

    The claim comes first, so a redelivered task or a crash mid-send never sends twice:
    at most once, by design, for a page people would otherwise get twice.
    """
    row = claim(message_id)
    if row is None:
        log.info("kakao message %s: no queued fallback (already sent or claimed)", message_id)
        return None
    note = fallback_note(
        row.provider_id,
        row.template_id,
        json.loads(row.fallback_message_json or "{}"),
        f"delivery to {row.to} failed: {row.reason or 'no reason given'}",
        [row.to],
    )
    delivery = deliver(
        plugins,
        row.tenant_id,
        json.loads(row.fallback_targets_json or "[]"),
        note,
        timeout_seconds=FALLBACK_SEND_TIMEOUT_SECONDS,
    )
    report = delivery.as_output()
    status = "sent" if delivery.delivered else "failed"
    with write_transaction():
        record_fallback([row.id], status, report)
        audit.record(
            row.tenant_id,
            "system",
            "kakao_message.fallback",
            f"kakao_message:{row.id}",
            {"status": status, "delivered": delivery.delivered, "on": "delivery_failed"},
        )
    return delivery
