"""Delivery events from providers: stored on their message, and the fallback they may trigger."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shared import audit
from shared.db import lock_for_update, write_transaction
from shared.domain.kakao import DELIVERY_FAILED, DeliveryEvent, apply_event
from shared.domain.targets import normalize_phone
from shared.models import KakaoMessage, Tenant, utcnow


@dataclass
class EventReport:
    """What a batch of events came to; ``fallbacks`` are message ids whose fallback to send."""

    stored: int = 0
    duplicates: int = 0
    unknown: list[dict[str, Any]] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)

    def as_answer(self) -> dict[str, Any]:
        """The API's answer."""
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "unknown": self.unknown,
            "fallbacks_queued": len(self.fallbacks),
        }


def store_events(
    tenant_id: str, provider_key: str, events: list[dict[str, Any]], *, actor: str
) -> EventReport:
    """Apply each event to its message, in one transaction; an unknown message is reported.

    A repeated event changes nothing. A new ``failed`` event of a message whose
    ``fallback_on`` has ``delivery_failed`` and that has had no fallback yet marks the
    fallback ``queued``: the caller enqueues those after the commit, and the state
    guarantees it is sent at most once.
    """
    report = EventReport()
    if Tenant.get_or_none(Tenant.id == tenant_id) is None:
        report.unknown = [_reference(event, "unknown tenant") for event in events]
        return report
    with write_transaction():
        for event in events:
            try:
                phone = normalize_phone(event["to"])
            except ValueError:
                report.unknown.append(_reference(event, "not a phone number"))
                continue
            row = lock_for_update(
                KakaoMessage.for_tenant(tenant_id).where(
                    KakaoMessage.provider_id == provider_key,
                    KakaoMessage.provider_message_id == event["provider_message_id"],
                    KakaoMessage.to == phone,
                )
            ).first()
            if row is None:
                report.unknown.append(_reference(event, "no such message"))
                continue
            received = DeliveryEvent(event["status"], event.get("reason"), event["occurred_at"])
            status, stored, new = apply_event(
                row.status, json.loads(row.events_json or "[]"), received
            )
            if not new:
                report.duplicates += 1
                continue
            report.stored += 1
            changes: dict[str, Any] = {
                "status": status,
                "events_json": json.dumps(stored),
                "updated_at": utcnow(),
            }
            if received.status == "failed":
                changes["reason"] = received.reason
                if _wants_fallback(row):
                    changes["fallback_status"] = "queued"
                    report.fallbacks.append(row.id)
            KakaoMessage.update(changes).where(KakaoMessage.id == row.id).execute()
        audit.record(
            tenant_id,
            actor,
            "kakao_message.events",
            f"kakao_provider:{provider_key}",
            {
                "stored": report.stored,
                "duplicates": report.duplicates,
                "unknown": len(report.unknown),
                "fallbacks_queued": report.fallbacks,
            },
        )
    return report


def _wants_fallback(row: KakaoMessage) -> bool:
    return (
        row.fallback_status is None
        and DELIVERY_FAILED in json.loads(row.fallback_on_json or "[]")
        and bool(json.loads(row.fallback_targets_json or "[]"))
    )


def _reference(event: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "provider_message_id": event.get("provider_message_id"),
        "to": event.get("to"),
        "reason": reason,
    }
