"""The ``kakao_messages`` rows: one per phone number of each send, with events and fallback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.db import write_transaction
from shared.domain.kakao import SendResult
from shared.models import KakaoMessage, utcnow


@dataclass(frozen=True)
class Origin:
    """The step a send belongs to; all None for a send-test."""

    execution_id: str | None = None
    step_id: str | None = None
    step_run_id: str | None = None


@dataclass(frozen=True)
class Fallback:
    """What a message falls back to: when, to which (rendered) targets, with which message."""

    on: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    message: dict[str, Any] | None = None


def record_send(
    tenant_id: str,
    *,
    provider_key: str,
    template_id: str,
    result: SendResult,
    to: list[str],
    trace_id: str,
    origin: Origin,
    fallback: Fallback,
) -> list[str]:
    """Store one row per phone number of a send; returns their ids.

    A row the provider already reported under the same message id is left alone.
    """
    now = utcnow()
    rows = []
    for phone in to:
        status, reason = result.recipients.get(phone, ("failed", result.error))
        rows.append(
            {
                "id": KakaoMessage.id.default(),
                "tenant": tenant_id,
                "provider_id": provider_key,
                "provider_message_id": result.provider_message_id,
                "template_id": template_id,
                "to": phone,
                "status": status,
                "reason": reason,
                "trace_id": trace_id,
                "execution": origin.execution_id,
                "step_id": origin.step_id,
                "step_run": origin.step_run_id,
                "fallback_on_json": json.dumps(list(fallback.on)),
                "fallback_targets_json": json.dumps(list(fallback.targets)),
                "fallback_message_json": json.dumps(fallback.message or {}),
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        with write_transaction():
            KakaoMessage.insert_many(rows).on_conflict_ignore().execute()
    return [row["id"] for row in rows]


def earlier_send(trace_id: str) -> list[KakaoMessage]:
    """Rows of an earlier attempt with this trace id that a provider accepted."""
    return list(
        KakaoMessage.select()
        .where(KakaoMessage.trace_id == trace_id, KakaoMessage.provider_message_id.is_null(False))
        .order_by(KakaoMessage.id)
    )


def record_fallback(message_ids: list[str], status: str, result: dict[str, Any]) -> None:
    """Store a fallback's outcome (``sent`` or ``failed``) on the messages it covered."""
    if not message_ids:
        return
    with write_transaction():
        KakaoMessage.update(
            fallback_status=status,
            fallback_result_json=json.dumps(result, default=str),
            updated_at=utcnow(),
        ).where(KakaoMessage.id.in_(message_ids)).execute()


def message_view(row: KakaoMessage) -> dict[str, Any]:
    """What the API shows of one message."""
    return {
        "id": row.id,
        "provider_id": row.provider_id,
        "provider_message_id": row.provider_message_id,
        "template_id": row.template_id,
        "to": row.to,
        "status": row.status,
        "reason": row.reason,
        "events": json.loads(row.events_json or "[]"),
        "fallback_on": json.loads(row.fallback_on_json or "[]"),
        "fallback_status": row.fallback_status,
        "fallback": json.loads(row.fallback_result_json) if row.fallback_result_json else None,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def kakao_messages_by_step(execution_id: str) -> dict[str, list[dict[str, Any]]]:
    """step_id -> views of the messages that step of the execution sent, in one query."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    rows = (
        KakaoMessage.select()
        .where(KakaoMessage.execution == execution_id)
        .order_by(KakaoMessage.id)
    )
    for row in rows:
        grouped.setdefault(row.step_id or "", []).append(message_view(row))
    return grouped
