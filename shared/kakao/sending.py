"""One send through a provider's ``POST /kakao/alimtalk/send`` (SPEC §6.4), as a SendResult."""

from __future__ import annotations

import dataclasses
from typing import Any

from cryptography.fernet import MultiFernet

from shared.domain.kakao import SendResult, read_answer, transport_failure
from shared.errors import ChannelError
from shared.kakao.providers import Provider, provider_token
from shared.outbound import OutboundPolicy
from shared.plugin_client import PluginClient
from shared.redaction import mask_secrets

#: Path of the send call on every provider.
SEND_PATH = "/kakao/alimtalk/send"


def send_alimtalk(
    plugins: PluginClient,
    ring: MultiFernet | None,
    tenant_id: str,
    provider: Provider,
    *,
    template_id: str,
    to: list[str],
    values: dict[str, Any],
    trace_id: str,
    timeout_seconds: float,
    known_secrets: tuple[str, ...] = (),
) -> SendResult:
    """Send one AlimTalk to ``to``; every failure (transport, HTTP, ``ok: false``) is a SendResult.

    The request body is exactly ``{tenant_id, provider_id, template_id, to, vars,
    trace_id}``; the bearer token is the provider's stored credential, or the shared
    plugin token for ``plugin_token`` providers. ``ring`` decrypts the credential.
    The provider's error texts are stored and shown: the token and ``known_secrets``
    (what the vars were rendered with) are masked in them.
    """
    token = provider_token(ring, tenant_id, provider, plugins.token)
    if not token:
        return transport_failure(
            f"Kakao provider {provider.key!r} has no credentials; set credentials.token with "
            f"PATCH /api/kakao/providers/{provider.key}",
            to,
            retryable=False,
        )
    payload = {
        "tenant_id": tenant_id,
        "provider_id": provider.key,
        "template_id": template_id,
        "to": to,
        "vars": values,
        "trace_id": trace_id,
    }
    try:
        answer = plugins.post_url(
            provider.base_url.rstrip("/") + SEND_PATH,
            payload,
            timeout_seconds=timeout_seconds,
            who=f"Kakao provider {provider.key!r}",
            token=token,
            # A tenant's own provider is a URL the tenant chose; the operator's is not.
            outbound=None
            if provider.auth == "plugin_token"
            else OutboundPolicy.for_kakao_providers(plugins.settings),
        )
    except ChannelError as error:
        return masked_result(
            transport_failure(error.message, to, retryable=error.retryable),
            (*known_secrets, token),
        )
    return masked_result(read_answer(answer, to), (*known_secrets, token))


def masked_result(result: SendResult, known_secrets: tuple[str, ...]) -> SendResult:
    """``result`` with ``known_secrets`` masked in its error texts."""
    return dataclasses.replace(
        result,
        error=mask_secrets(result.error, known_secrets) if result.error else result.error,
        recipients={
            phone: (status, mask_secrets(reason, known_secrets) if reason else reason)
            for phone, (status, reason) in result.recipients.items()
        },
    )
