"""Kakao AlimTalk rules: required vars, reading a provider's answer, delivery events, fallback. Pure.

The provider contract is SPEC §6.4: ``POST /kakao/alimtalk/send`` answers
``{ok, provider_message_id, result: {accepted, failed}, error}`` and may add
``recipients: [{to, status, reason}]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: When a kakao target's fallback is sent: the provider refused the send, or a
#: delivery event reported failure later.
SEND_ERROR = "send_error"
DELIVERY_FAILED = "delivery_failed"
FALLBACK_ON = (SEND_ERROR, DELIVERY_FAILED)
#: What a kakao target falls back on when its YAML does not say.
DEFAULT_FALLBACK_ON = (SEND_ERROR,)
#: Delivery event statuses a provider reports, and the message status each leads to.
EVENT_STATUSES = {"delivered": "delivered", "failed": "delivery_failed"}
#: Provider auth schemes: a per-provider bearer credential, or the shared plugin token.
AUTH_SCHEMES = ("bearer", "plugin_token")


def missing_vars(required: Iterable[str], values: Mapping[str, Any]) -> list[str]:
    """Required names that ``values`` lacks, or holds as null / blank text, in ``required`` order."""
    missing = []
    for name in required:
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(name)
    return missing


@dataclass(frozen=True)
class SendResult:
    """What one send to a provider came to.

    ``ok`` is False for ``ok: false``, a transport failure, or when every recipient
    failed (SPEC §6 "provider failure"). ``recipients`` maps each phone number to
    ``(status, reason)``, status ``accepted`` or ``failed``.
    """

    ok: bool
    provider_message_id: str | None
    accepted: int
    failed: int
    error: str | None
    retryable: bool = False
    recipients: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def as_output(self) -> dict[str, Any]:
        """The fields a step output or API answer shows."""
        return {
            "ok": self.ok,
            "provider_message_id": self.provider_message_id,
            "accepted": self.accepted,
            "failed": self.failed,
            "error": self.error,
        }


def send_error_fallback_due(ok: bool, fallback_on: Iterable[str], targets: Iterable[str]) -> bool:
    """Whether a send's outcome calls for its ``send_error`` fallback: it failed, and one is set up."""
    return not ok and SEND_ERROR in tuple(fallback_on) and bool(tuple(targets))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def read_answer(answer: Mapping[str, Any], to: list[str]) -> SendResult:
    """Interpret a provider's JSON answer to a send to the phone numbers ``to``.

    Per-recipient statuses come from ``recipients`` when the provider gives them;
    otherwise an ``ok`` answer with nothing failed marks everyone accepted, and a
    failed one marks everyone failed. A malformed answer is a failure that says so.
    """
    if not isinstance(answer.get("ok"), bool):
        return SendResult(
            False, None, 0, len(to), "the provider's answer has no true/false 'ok' field"
        )
    result = answer.get("result") if isinstance(answer.get("result"), Mapping) else {}
    message_id = answer.get("provider_message_id")
    message_id = str(message_id) if message_id not in (None, "") else None
    error = answer.get("error") if isinstance(answer.get("error"), str) else None
    recipients: dict[str, tuple[str, str | None]] = {}
    for item in answer.get("recipients") or []:
        if isinstance(item, Mapping) and item.get("to") in to:
            status = "accepted" if item.get("status") == "accepted" else "failed"
            reason = item.get("reason") if isinstance(item.get("reason"), str) else None
            recipients[item["to"]] = (status, reason)
    if answer["ok"]:
        for phone in to:
            recipients.setdefault(phone, ("accepted", None))
    else:
        # Nobody was accepted, whatever a recipient entry says; keep its reason if it has one.
        recipients = {
            phone: ("failed", recipients.get(phone, ("failed", None))[1] or error) for phone in to
        }
    accepted = _count(result.get("accepted"))
    failed = _count(result.get("failed"))
    if accepted is None or failed is None:
        accepted = sum(1 for status, _ in recipients.values() if status == "accepted")
        failed = len(recipients) - accepted
    if answer["ok"] and message_id is None:
        return SendResult(
            False, None, 0, len(to), "the provider answered ok without a provider_message_id"
        )
    if answer["ok"] and accepted == 0 and to:
        reasons = sorted({reason for status, reason in recipients.values() if reason})
        detail = f": {'; '.join(reasons)}" if reasons else ""
        return SendResult(
            False, message_id, 0, failed, f"every recipient failed{detail}", False, recipients
        )
    if not answer["ok"]:
        return SendResult(
            False,
            message_id,
            0,
            failed or len(to),
            error or "the provider refused the send",
            False,
            recipients,
        )
    return SendResult(True, message_id, accepted, failed, error, False, recipients)


def transport_failure(message: str, to: list[str], *, retryable: bool) -> SendResult:
    """A send that never got an answer (timeout, refused connection, HTTP error)."""
    return SendResult(
        False,
        None,
        0,
        len(to),
        message,
        retryable,
        {phone: ("failed", message) for phone in to},
    )


def fallback_message(
    *,
    provider: str,
    template_id: str,
    values: Mapping[str, Any],
    reason: str,
    to: list[str],
) -> dict[str, str]:
    """Title and text of the message fallback targets get instead of the AlimTalk."""
    lines = [
        f"Kakao AlimTalk {template_id!r} through provider {provider!r} was not delivered: {reason}",
        f"to: {', '.join(to) if to else '(nobody)'}",
    ]
    lines.extend(f"{name}: {value}" for name, value in values.items())
    return {"title": f"[Kakao fallback] {template_id}", "message": "\n".join(lines)}


@dataclass(frozen=True)
class DeliveryEvent:
    """One delivery report of a provider for one recipient of one message."""

    status: str
    reason: str | None
    occurred_at: datetime

    def as_stored(self) -> dict[str, Any]:
        """The form kept in ``kakao_messages.events_json``; times in UTC with a ``Z``."""
        moment = self.occurred_at
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        return {
            "status": self.status,
            "reason": self.reason,
            "occurred_at": moment.isoformat(timespec="microseconds") + "Z",
        }


def apply_event(
    status: str, events: list[dict[str, Any]], event: DeliveryEvent
) -> tuple[str, list[dict[str, Any]], bool]:
    """(new status, new events, whether the event was new) after receiving ``event``.

    A repeat of an event already stored changes nothing. The newest event (by
    ``occurred_at``) decides the status; a message whose send failed stays failed.
    """
    stored = event.as_stored()
    if stored in events:
        return status, events, False
    merged = sorted([*events, stored], key=lambda item: item["occurred_at"])
    if status == "failed":
        return status, merged, True
    return EVENT_STATUSES[merged[-1]["status"]], merged, True
