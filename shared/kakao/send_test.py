"""``POST /api/kakao/send-test``: check a send like a workflow would, then really send it."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.fernet import MultiFernet

from shared import audit
from shared.db import write_transaction
from shared.directory import expand_phones
from shared.domain.kakao import missing_vars
from shared.errors import ValidationError
from shared.kakao.messages import Fallback, Origin, record_send
from shared.kakao.providers import Provider, resolve_provider
from shared.kakao.sending import send_alimtalk
from shared.kakao.templates import required_vars, resolve_template
from shared.plugin_client import PluginClient

#: How long a send-test waits for the provider, in seconds.
SEND_TEST_TIMEOUT_SECONDS = 15.0


def _check(
    tenant_id: str, provider_key: str, template_id: str, to: list[str], values: dict[str, Any]
) -> tuple[Provider, Any]:
    """Every problem of the request at once, as one ValidationError naming each field."""
    errors: dict[str, Any] = {}
    provider = template = None
    try:
        provider = resolve_provider(tenant_id, provider_key)
    except ValidationError as error:
        errors.update(error.errors["json"])
    try:
        template = resolve_template(tenant_id, provider_key, template_id)
    except ValidationError as error:
        errors.update(error.errors["json"])
    if template is not None:
        missing = missing_vars(required_vars(template), values)
        if missing:
            errors["vars"] = {name: [f"required by template {template_id!r}"] for name in missing}
    expansion = expand_phones(tenant_id, to)
    if expansion.problems:
        errors["to"] = expansion.problems
    elif not expansion.phones:
        names = ", ".join(item["name"] for item in expansion.missing)
        errors["to"] = [f"no phone numbers to send to (without a phone: {names or 'nobody'})"]
    if errors:
        lines = []
        for field, messages in errors.items():
            if isinstance(messages, dict):
                lines.append(f"{field}: missing {', '.join(messages)}")
            else:
                lines.append(f"{field}: {' '.join(messages)}")
        raise ValidationError("send-test refused: " + "; ".join(lines), errors={"json": errors})
    return provider, expansion


def send_test(
    plugins: PluginClient,
    ring: MultiFernet,
    tenant_id: str,
    *,
    provider_key: str,
    template_id: str,
    to: list[str],
    values: dict[str, Any],
    actor: str,
) -> dict[str, Any]:
    """Validate, expand ``to``, send, store the messages; the provider's answer and the expansion.

    Validation problems are one ValidationError (422); a provider failure is an
    answer with ``ok: false`` (the test did run).
    """
    provider, expansion = _check(tenant_id, provider_key, template_id, to, values)
    trace_id = f"test_{uuid.uuid4().hex}"
    result = send_alimtalk(
        plugins,
        ring,
        tenant_id,
        provider,
        template_id=template_id,
        to=expansion.phones,
        values=values,
        trace_id=trace_id,
        timeout_seconds=SEND_TEST_TIMEOUT_SECONDS,
    )
    with write_transaction():
        ids = record_send(
            tenant_id,
            provider_key=provider.key,
            template_id=template_id,
            result=result,
            to=expansion.phones,
            trace_id=trace_id,
            origin=Origin(),
            fallback=Fallback(),
        )
        audit.record(
            tenant_id,
            actor,
            "kakao.send_test",
            f"kakao_provider:{provider.key}",
            {
                "template_id": template_id,
                "recipients": len(expansion.phones),
                "ok": result.ok,
                "provider_message_id": result.provider_message_id,
                "trace_id": trace_id,
            },
        )
    return {
        **result.as_output(),
        "provider": provider.key,
        "template_id": template_id,
        "trace_id": trace_id,
        "to": expansion.phones,
        "expanded": expansion.expanded,
        "missing_phones": expansion.missing,
        "recipients": [
            {"to": phone, "status": status, "reason": reason}
            for phone, (status, reason) in result.recipients.items()
        ],
        "message_ids": ids,
    }
