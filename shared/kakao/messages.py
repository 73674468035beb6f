"""The ``kakao_messages`` rows: one per phone number of each send, with events and fallback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.db import write_transaction
from shared.domain.kakao import SEND_ERROR, SendResult, send_error_fallback_due
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
    """Store one row per phone number of a send, in one transaction; their ids, in ``to`` order.

    When the send failed and ``fallback`` asks for it on ``send_error``, the rows are
    stored with their fallback ``queued`` and a ``send_error`` entry in the fallback
    message (the send's error and phone numbers): the caller claims it with
    :func:`claim_fallback` before sending, so a crash before the send leaves it queued
    for the step's retry (or the reconciler) instead of losing it.

    A row the provider already reported under the same message id and phone is left
    alone and its id returned. It is looked up before the insert, in the same
    transaction, rather than with INSERT IGNORE (which MySQL also applies to CHECK,
    foreign key and length errors, dropping the row with a warning); so any such
    error raises. A plain read, not FOR UPDATE: MySQL's gap locks would make two
    concurrent sends deadlock; a concurrent insert of the very same row (two attempts
    of one step at once) fails this one with IntegrityError instead.
    """
    phones = list(dict.fromkeys(to))
    if not phones:
        return []
    message = dict(fallback.message or {})
    queued = send_error_fallback_due(result.ok, fallback.on, fallback.targets)
    if queued:
        message[SEND_ERROR] = {"reason": result.error, "to": phones}
    now = utcnow()
    with write_transaction():
        ids = _existing_ids(tenant_id, provider_key, result.provider_message_id, phones)
        rows = []
        for phone in phones:
            if phone in ids:
                continue
            status, reason = result.recipients.get(phone, ("failed", result.error))
            ids[phone] = KakaoMessage.id.default()
            rows.append(
                {
                    "id": ids[phone],
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
                    "fallback_message_json": json.dumps(message),
                    "fallback_status": "queued" if queued else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if rows:
            KakaoMessage.insert_many(rows).execute()
    return [ids[phone] for phone in phones]


def _existing_ids(
    tenant_id: str, provider_key: str, provider_message_id: str | None, phones: list[str]
) -> dict[str, str]:
    """phone -> id of the rows already stored for this provider message (none without an id)."""
    if provider_message_id is None:
        return {}
    query = KakaoMessage.for_tenant(tenant_id, KakaoMessage.id, KakaoMessage.to).where(
        KakaoMessage.provider_id == provider_key,
        KakaoMessage.provider_message_id == provider_message_id,
        KakaoMessage.to.in_(phones),
    )
    return {row.to: row.id for row in query}


def earlier_send(tenant_id: str, trace_id: str) -> list[KakaoMessage]:
    """Rows of an earlier attempt with this trace id: the provider named a message, or a fallback was set off."""
    return list(
        KakaoMessage.for_tenant(tenant_id)
        .where(
            KakaoMessage.trace_id == trace_id,
            KakaoMessage.provider_message_id.is_null(False)
            | KakaoMessage.fallback_status.is_null(False),
        )
        .order_by(KakaoMessage.id)
    )


def send_error_of(row: KakaoMessage) -> dict[str, Any] | None:
    """The ``send_error`` entry of a row's fallback (``reason``, ``to``); None for other rows."""
    entry = json.loads(row.fallback_message_json or "{}").get(SEND_ERROR)
    return entry if isinstance(entry, dict) else None


def send_error_group(tenant_id: str, trace_id: str) -> list[KakaoMessage]:
    """The rows one send_error fallback covers: those of the trace (a step's kakao target) that have one."""
    return [row for row in earlier_send(tenant_id, trace_id) if send_error_of(row) is not None]


def claim_fallback(tenant_id: str, message_ids: list[str], claimable: tuple[str, ...]) -> bool:
    """Move the fallback of these messages from a ``claimable`` state to ``sending``; False when none was.

    One statement for all of them, so of two claimers exactly one wins.
    """
    if not message_ids:
        return False
    with write_transaction():
        claimed = (
            KakaoMessage.update(fallback_status="sending", updated_at=utcnow())
            .where(
                KakaoMessage.tenant == tenant_id,
                KakaoMessage.id.in_(message_ids),
                KakaoMessage.fallback_status.in_(claimable),
            )
            .execute()
        )
    return claimed > 0


def record_fallback(message_ids: list[str], status: str, result: dict[str, Any]) -> None:
    """Store a claimed fallback's outcome (``sent`` or ``failed``) on the messages it covered."""
    if not message_ids:
        return
    with write_transaction():
        KakaoMessage.update(
            fallback_status=status,
            fallback_result_json=json.dumps(result, default=str),
            updated_at=utcnow(),
        ).where(
            KakaoMessage.id.in_(message_ids), KakaoMessage.fallback_status == "sending"
        ).execute()


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


def kakao_messages_by_step(execution_id: str, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    """step_id -> views of the messages that step of the execution sent, in one query (``tenant_id``'s rows only)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    rows = (
        KakaoMessage.for_tenant(tenant_id)
        .where(KakaoMessage.execution == execution_id)
        .order_by(KakaoMessage.id)
    )
    for row in rows:
        grouped.setdefault(row.step_id or "", []).append(message_view(row))
    return grouped
