"""Kakao fallbacks sent by a worker actor, each at most once: delivery-failed ones, and lost send_error ones.

Two kinds of fallback wait in ``kakao_messages`` as ``queued``:

- ``delivery_failed``: one per message, queued by a failed delivery event and sent
  by the actor (:func:`send_delivery_fallback`).
- ``send_error``: one per failed send of a step's kakao target, covering all its
  rows, stored queued with the send and claimed by the step right after. The step
  owns it: a retry of the step sends it again if it failed, or reports it if sent.
  Only when it stays queued past REQUEUE_AFTER_MS (the worker died between storing
  and sending) does the reconciler hand it to the actor, which claims the whole
  group and sends the same message; a later step retry then reports what the actor
  did. The actor never re-sends a ``failed`` one: that is the step retry's call.

Every send is preceded by a claim (queued/failed -> sending in one statement), so
two senders never both send, and a crash mid-send never leads to a second send.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from shared import audit
from shared.db import write_transaction
from shared.dispatch import Dispatcher
from shared.kakao.messages import claim_fallback, record_fallback, send_error_group, send_error_of
from shared.kakao.notify import fallback_note, send_claimed_fallback
from shared.models import KakaoMessage
from shared.notifications import Delivery, deliver
from shared.plugin_client import PluginClient

log = logging.getLogger(__name__)

#: The worker actor that sends the queued fallback of one message: ``(message_id)``.
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
    row = KakaoMessage.get_or_none(KakaoMessage.id == message_id)
    if row is None or not claim_fallback(row.tenant_id, [message_id], ("queued",)):
        return None
    return KakaoMessage.get_by_id(message_id)


def send_delivery_fallback(plugins: PluginClient, message_id: str) -> Delivery | None:
    """Send the queued fallback of a message; None when there was none to send.

    A send_error fallback goes to :func:`send_lost_send_error_fallback`. The claim
    comes first, so a redelivered task or a crash mid-send never sends twice: at most
    once, by design, for a page people would otherwise get twice.
    """
    found = KakaoMessage.get_or_none(KakaoMessage.id == message_id)
    if found is not None and send_error_of(found) is not None:
        return send_lost_send_error_fallback(plugins, found)
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


def send_lost_send_error_fallback(plugins: PluginClient, row: KakaoMessage) -> Delivery | None:
    """Send a step's send_error fallback the step left queued, for every row it covers; or None.

    None when it is not queued any more (the step, or another task, took it).
    """
    group = send_error_group(row.tenant_id, row.trace_id)
    delivery = send_claimed_fallback(
        group,
        lambda targets, note: deliver(
            plugins, row.tenant_id, targets, note, timeout_seconds=FALLBACK_SEND_TIMEOUT_SECONDS
        ),
        ("queued",),
    )
    if delivery is None:
        log.info("kakao message %s: its send_error fallback is not queued any more", row.id)
        return None
    with write_transaction():
        audit.record(
            row.tenant_id,
            "system",
            "kakao_message.fallback",
            f"kakao_message:{row.id}",
            {
                "status": "sent" if delivery.delivered else "failed",
                "delivered": delivery.delivered,
                "on": "send_error",
                "messages": [member.id for member in group],
            },
        )
    return delivery
