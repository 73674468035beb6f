"""A structured ``kakao:`` notify target: validate, expand, send, store, fall back (SPEC §6.3).

How a kakao target counts toward a notify step: it is one target. It is delivered when
the provider accepted the send for at least one recipient, or — after a provider
failure with ``send_error`` in ``fallback_on`` — when the fallback reached at least one
of its targets (``delivered_by: fallback``). Bad configuration (unknown or inactive
template or provider, missing required vars, unknown groups, malformed numbers, nobody
with a phone) fails the target without a retry and without the fallback: those are
mistakes in the workflow or registry to fix, not provider failures.

Retries: the rows of a send carry the step's stable trace id. A retry that finds
them never sends the AlimTalk again; the send_error fallback, stored ``queued`` with
the send and claimed before it is sent, is sent by the retry if it is still queued
or failed and reported if it was sent: at most once (see :mod:`shared.kakao.fallback`
for the reconciler's part).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shared.domain.kakao import (
    DEFAULT_FALLBACK_ON,
    fallback_message,
    send_error_fallback_due,
)
from shared.kakao.checks import check_send
from shared.kakao.messages import (
    Fallback,
    Origin,
    claim_fallback,
    earlier_send,
    record_fallback,
    record_send,
    send_error_group,
    send_error_of,
)
from shared.kakao.sending import send_alimtalk
from shared.keyring import keyring
from shared.models import KakaoMessage
from shared.plugin_client import PluginClient
from shared.redaction import redact

#: Sends ``message`` to fallback targets and returns the Delivery (notifications.deliver).
FallbackSender = Callable[[list[str], dict[str, Any]], Any]


def fallback_note(
    provider_key: str,
    template_id: str,
    context: Mapping[str, Any],
    reason: str | None,
    to: list[str],
) -> dict[str, Any]:
    """The notify message fallback targets get: title, text, severity and origin."""
    text = fallback_message(
        provider=provider_key,
        template_id=template_id,
        values=context.get("values") or {},
        reason=reason or "the provider reported a failure",
        to=to,
    )
    return {
        **text,
        "severity": context.get("severity") or "warning",
        "execution_id": context.get("execution_id"),
        "step_id": context.get("step_id"),
    }


def send_error_note(row: KakaoMessage) -> dict[str, Any]:
    """The fallback message of a send_error fallback, rebuilt from one of the rows it covers."""
    entry = send_error_of(row) or {}
    return fallback_note(
        row.provider_id,
        row.template_id,
        json.loads(row.fallback_message_json or "{}"),
        entry.get("reason"),
        entry.get("to") or [row.to],
    )


def send_claimed_fallback(
    group: list[KakaoMessage], send_fallback: FallbackSender, claimable: tuple[str, ...]
) -> Any | None:
    """Claim the send_error fallback of ``group``, send it, store the outcome; the Delivery.

    None when it was not in a ``claimable`` state (another attempt or the fallback
    actor sent it, or is sending it): the claim makes each send happen at most once.
    """
    ids = [row.id for row in group]
    if not claim_fallback(group[0].tenant_id, ids, claimable):
        return None
    delivery = send_fallback(
        json.loads(group[0].fallback_targets_json or "[]"), send_error_note(group[0])
    )
    record_fallback(ids, "sent" if delivery.delivered else "failed", delivery.as_output())
    return delivery


def settle_fallback(tenant_id: str, trace_id: str, send_fallback: FallbackSender) -> dict[str, Any]:
    """Send the send_error fallback of a trace unless it was sent; the outcome fields it decides.

    A ``queued`` fallback (just recorded, or left by a crash before its send) and a
    ``failed`` one (a step retry) are claimed and sent; a ``sent`` one is reported as
    it was; one left ``sending`` (an attempt stopped mid-send, or is still sending) is
    not sent again, and the step may retry to find it finished.
    """
    group = send_error_group(tenant_id, trace_id)
    if not group:
        return {"ok": False, "delivered_by": None, "fallback": None}
    delivery = send_claimed_fallback(group, send_fallback, ("queued", "failed"))
    if delivery is not None:
        delivered = bool(delivery.delivered)
        return {
            "ok": delivered,
            "delivered_by": "fallback" if delivered else None,
            "fallback": delivery.as_output(),
            "retryable": not delivered and delivery.retryable,
        }
    row = KakaoMessage.get_by_id(group[0].id)
    report = json.loads(row.fallback_result_json) if row.fallback_result_json else None
    if row.fallback_status == "sent":
        return {"ok": True, "delivered_by": "fallback", "fallback": report, "retryable": False}
    return {
        "ok": False,
        "delivered_by": None,
        "fallback": report,
        "retryable": row.fallback_status == "sending",
        "fallback_status": row.fallback_status,
    }


def earlier_outcome(
    tenant_id: str, rows: list[KakaoMessage], send_fallback: FallbackSender
) -> dict[str, Any]:
    """The result of a send an earlier attempt made (its rows), without sending the AlimTalk again.

    Its send_error fallback is finished if it is not yet: sent when still queued or
    failed, reported when sent, never sent twice.
    """
    accepted = sum(1 for row in rows if row.status != "failed")
    entry = next((send_error_of(row) for row in rows if send_error_of(row)), None)
    outcome: dict[str, Any] = {
        "provider_message_id": rows[0].provider_message_id,
        "accepted": accepted,
        "failed": len(rows) - accepted,
        "error": None if accepted else rows[0].reason or "every recipient failed",
        "retryable": False,
        "note": "sent by an earlier attempt of this step; not sent again",
    }
    if accepted:
        fallen_back = next((row for row in rows if row.fallback_status == "sent"), None)
        report = json.loads(fallen_back.fallback_result_json) if fallen_back else None
        return {**outcome, "ok": True, "delivered_by": "kakao", "fallback": report}
    if entry is None:
        return {**outcome, "ok": False, "delivered_by": None, "fallback": None}
    outcome["error"] = entry.get("reason") or outcome["error"]
    return {**outcome, **settle_fallback(tenant_id, rows[0].trace_id, send_fallback)}


def _failure(base: dict[str, Any], error: str, **extra: Any) -> dict[str, Any]:
    return {**base, "ok": False, "delivered_by": None, "error": error, "retryable": False, **extra}


def send_target(
    plugins: PluginClient,
    tenant_id: str,
    target: Mapping[str, Any],
    message: Mapping[str, Any],
    *,
    render: Callable[[Any], Any],
    timeout_seconds: float,
    send_fallback: FallbackSender,
    trace_id: str | None = None,
    step_run_id: str | None = None,
    known_secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Send one ``{kakao: {...}}`` item; its result for the step output.

    The result lists the phone numbers sent to and the recipients without a phone
    (``missing_phones``). ``trace_id`` is stable across attempts of one step run: a
    retry that finds the provider answered this item before reuses that answer
    instead of sending again. ``render`` renders a value (strings inside dicts and
    lists too) with the step's template context.
    """
    spec = target["kakao"]
    provider_key, template_id = spec["provider"], spec["template_id"]
    base: dict[str, Any] = {
        "target": "kakao",
        "channel": "kakao",
        "provider": provider_key,
        "template_id": template_id,
    }
    trace_id = trace_id or f"tr_{uuid.uuid4().hex}"
    values = render(dict(spec.get("vars") or {}))
    check = check_send(
        tenant_id, provider_key, template_id, [render(item) for item in spec["to"]], values
    )
    expansion = check.expansion
    base.update(to=expansion.phones, missing_phones=expansion.missing)
    if check.errors:
        extra = {"missing_vars": check.missing_vars} if check.missing_vars else {}
        return _failure(base, f"kakao refused: {check.summary()}", **extra)
    provider = check.provider

    earlier = earlier_send(tenant_id, trace_id)
    if earlier:
        return {**base, **earlier_outcome(tenant_id, earlier, send_fallback)}

    ring = keyring(plugins.settings) if provider.auth == "bearer" else None
    result = send_alimtalk(
        plugins,
        ring,
        tenant_id,
        provider,
        template_id=template_id,
        to=expansion.phones,
        values=values,
        trace_id=trace_id,
        timeout_seconds=timeout_seconds,
        known_secrets=known_secrets,
    )
    fallback_on = tuple(spec.get("fallback_on", DEFAULT_FALLBACK_ON))
    fallback_targets = [render(item) for item in spec.get("fallback") or []]
    # What the fallback may show of the vars: secrets a template read are masked.
    context = {
        "values": redact(values, known_secrets=known_secrets),
        "severity": message.get("severity", "warning"),
        "execution_id": message.get("execution_id"),
        "step_id": message.get("step_id"),
    }
    # A send_error fallback is stored queued with the send, then claimed and sent.
    record_send(
        tenant_id,
        provider_key=provider_key,
        template_id=template_id,
        result=result,
        to=expansion.phones,
        trace_id=trace_id,
        origin=Origin(message.get("execution_id"), message.get("step_id"), step_run_id),
        fallback=Fallback(fallback_on, tuple(fallback_targets), context),
    )
    outcome = {**base, **result.as_output(), "retryable": result.retryable, "fallback": None}
    if result.ok:
        return {**outcome, "delivered_by": "kakao"}
    outcome["delivered_by"] = None
    if send_error_fallback_due(result.ok, fallback_on, fallback_targets):
        # A retry resumes this fallback and never sends the AlimTalk again.
        outcome.update(settle_fallback(tenant_id, trace_id, send_fallback))
    return outcome
