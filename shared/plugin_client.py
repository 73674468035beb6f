"""The one client Core uses to call plugins over HTTP (SPEC §9), with the plugin token."""

from __future__ import annotations

from typing import Any

import requests

from shared.errors import ChannelError, OutboundRefused
from shared.outbound import OutboundPolicy, tenant_session
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

#: Most characters of a callee's refusal message repeated in an error.
MAX_REFUSAL_CHARS = 200
#: Seconds to wait for a plugin to accept a connection.
CONNECT_TIMEOUT_SECONDS = 3.0


class PluginClient:
    """Calls ``POST <plugin>/<path>`` with the shared token; errors become ChannelError."""

    def __init__(self, settings: Settings, *, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.token = load_plugin_token(settings)
        self.session = session or requests.Session()

    def post(
        self, plugin: str, path: str, payload: dict[str, Any], *, timeout_seconds: float
    ) -> dict[str, Any]:
        """The plugin's JSON answer; ChannelError (retryable for 429/5xx/unreachable) otherwise."""
        url = f"{self.settings.plugin_url(plugin)}/{path.lstrip('/')}"
        return self.post_url(
            url, payload, timeout_seconds=timeout_seconds, who=f"plugin {plugin!r}"
        )

    def post_url(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        timeout_seconds: float,
        who: str,
        token: str | None = None,
        outbound: OutboundPolicy | None = None,
    ) -> dict[str, Any]:
        """POST ``payload`` to ``url`` with ``token`` (default: the plugin token) as bearer.

        ``who`` names the callee in error messages (``plugin 'slack'``, ``kakao provider
        'mock'``). ``outbound``: the URL is a tenant's, held to that policy when connecting.
        The JSON answer; ChannelError (retryable for 429/5xx/unreachable) otherwise.
        """
        session = self.session
        if outbound is not None and outbound.enforced:
            session = tenant_session(outbound)
        try:
            response = session.post(
                url,
                json=payload,
                headers={"Authorization": f"Bearer {token or self.token}"},
                timeout=(min(CONNECT_TIMEOUT_SECONDS, timeout_seconds), timeout_seconds),
                # A redirect would carry the bearer token on to wherever it points.
                allow_redirects=False,
            )
        except OutboundRefused as error:
            raise ChannelError(f"{who} refused: {error.message}") from None
        except requests.Timeout as error:
            raise ChannelError(
                f"{who} at {url} timed out after {timeout_seconds:g} s", retryable=True
            ) from error
        except requests.ConnectionError as error:
            raise ChannelError(f"{who} at {url} is unreachable", retryable=True) from error
        if response.status_code == 429 or response.status_code >= 500:
            raise ChannelError(f"{who} answered HTTP {response.status_code}", retryable=True)
        try:
            answer = response.json()
        except ValueError:
            raise ChannelError(f"{who} answered HTTP {response.status_code} without JSON") from None
        if not isinstance(answer, dict):
            raise ChannelError(
                f"{who} answered HTTP {response.status_code} with JSON that is not an object"
            )
        if response.status_code >= 300:
            detail = str(answer.get("message", ""))[:MAX_REFUSAL_CHARS]
            raise ChannelError(
                f"{who} refused the request: HTTP {response.status_code} {detail}".strip()
            )
        return answer

    def send(
        self, target_plugin: str, payload: dict[str, Any], *, timeout_seconds: float
    ) -> dict[str, Any]:
        """Deliver one message through a channel plugin's ``POST /send``."""
        answer = self.post(target_plugin, "/send", payload, timeout_seconds=timeout_seconds)
        if not answer.get("ok"):
            raise ChannelError(
                f"plugin {target_plugin!r} could not deliver: {answer.get('error') or 'unknown error'}",
                retryable=bool(answer.get("retryable")),
            )
        return answer
