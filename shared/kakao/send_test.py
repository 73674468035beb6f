"""``POST /api/kakao/send-test``: check a send like a workflow would, then really send it."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.fernet import MultiFernet

from shared import audit
from shared.db import write_transaction
from shared.errors import ValidationError
from shared.kakao.checks import check_send
from shared.kakao.messages import Fallback, Origin, record_send
from shared.kakao.sending import send_alimtalk
from shared.plugin_client import PluginClient

#: How long a send-test waits for the provider, in seconds.
SEND_TEST_TIMEOUT_SECONDS = 15.0


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
    check = check_send(tenant_id, provider_key, template_id, to, values)
    if check.errors:
        raise ValidationError(
            "send-test refused: " + check.summary(), errors={"json": check.errors}
        )
    provider, expansion = check.provider, check.expansion
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
