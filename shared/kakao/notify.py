"""A structured ``kakao:`` notify target: validate, expand, send, store, fall back (SPEC §6.3).

How a kakao target counts toward a notify step: it is one target. It is delivered when
the provider accepted the send for at least one recipient, or — after a provider
failure with ``send_error`` in ``fallback_on`` — when the fallback reached at least one
of its targets (``delivered_by: fallback``). Bad configuration (unknown or inactive
template or provider, missing required vars, unknown groups, malformed numbers, nobody
with a phone) fails the target without a retry and without the fallback: those are
mistakes in the workflow or registry to fix, not provider failures.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shared.directory import expand_phones
from shared.domain.kakao import SEND_ERROR, fallback_message, missing_vars
from shared.errors import ValidationError
from shared.kakao.messages import Fallback, Origin, earlier_send, record_fallback, record_send
from shared.kakao.providers import resolve_provider
from shared.kakao.sending import send_alimtalk
from shared.kakao.templates import required_vars, resolve_template
from shared.keyring import keyring
from shared.models import KakaoMessage
from shared.plugin_client import PluginClient
from shared.redaction import redact

#: Sends ``message`` to fallback targets and returns the Delivery (notifications.deliver).
FallbackSender = Callable[[list[str], dict[str, Any]], Any]


def render_leaves(value: Any, render: Callable[[str], str]) -> Any:
    """``value`` with every string inside it rendered by ``render``."""
    if isinstance(value, str):
        return render(value)
    if isinstance(value, Mapping):
        return {key: render_leaves(item, render) for key, item in value.items()}
    if isinstance(value, list):
        return [render_leaves(item, render) for item in value]
    return value


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


def earlier_outcome(rows: list[KakaoMessage]) -> dict[str, Any]:
    """The result of a send an earlier attempt made (its rows), without sending again."""
    accepted = sum(1 for row in rows if row.status != "failed")
    fallen_back = next((row for row in rows if row.fallback_status == "sent"), None)
    delivered_by = "kakao" if accepted else "fallback" if fallen_back else None
    return {
        "ok": delivered_by is not None,
        "delivered_by": delivered_by,
        "provider_message_id": rows[0].provider_message_id,
        "accepted": accepted,
        "failed": len(rows) - accepted,
        "error": None if accepted else rows[0].reason or "every recipient failed",
        "retryable": False,
        "fallback": json.loads(fallen_back.fallback_result_json) if fallen_back else None,
        "note": "sent by an earlier attempt of this step; not sent again",
    }


def _failure(base: dict[str, Any], error: str, **extra: Any) -> dict[str, Any]:
    return {**base, "ok": False, "delivered_by": None, "error": error, "retryable": False, **extra}


def send_target(
    plugins: PluginClient,
    tenant_id: str,
    target: Mapping[str, Any],
    message: Mapping[str, Any],
    *,
    render: Callable[[str], str],
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
    instead of sending again.
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
    try:
        provider = resolve_provider(tenant_id, provider_key)
        template = resolve_template(tenant_id, provider_key, template_id)
    except ValidationError as error:
        return _failure(base, error.message)
    values = render_leaves(dict(spec.get("vars") or {}), render)
    missing = missing_vars(required_vars(template), values)
    if missing:
        return _failure(
            base,
            f"template {template_id!r} needs vars that are missing: {', '.join(missing)}",
            missing_vars=missing,
        )
    expansion = expand_phones(tenant_id, [render(item) for item in spec["to"]])
    base.update(to=expansion.phones, missing_phones=expansion.missing)
    if expansion.problems or not expansion.phones:
        problem = "; ".join(expansion.problems) or "no recipient has a phone number"
        return _failure(base, f"kakao to[]: {problem}")

    earlier = earlier_send(trace_id)
    if earlier:
        return {**base, **earlier_outcome(earlier)}

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
    )
    fallback_on = tuple(spec["fallback_on"]) if "fallback_on" in spec else (SEND_ERROR,)
    fallback_targets = [render(item) for item in spec.get("fallback") or []]
    # What the fallback may show of the vars: secrets a template read are masked.
    context = {
        "values": redact(values, known_secrets=known_secrets),
        "severity": message.get("severity", "warning"),
        "execution_id": message.get("execution_id"),
        "step_id": message.get("step_id"),
    }
    ids = record_send(
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
    if SEND_ERROR in fallback_on and fallback_targets:
        note = fallback_note(provider_key, template_id, context, result.error, expansion.phones)
        delivery = send_fallback(fallback_targets, note)
        report = delivery.as_output()
        record_fallback(ids, "sent" if delivery.delivered else "failed", report)
        outcome["fallback"] = report
        if delivery.delivered:
            outcome.update(ok=True, delivered_by="fallback")
        else:
            outcome["retryable"] = result.retryable or delivery.retryable
    return outcome
