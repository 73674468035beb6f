"""Delivery to Slack through slack_sdk's WebClient; Slack's errors become ChannelError."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from plugins.slack.blocks import message_blocks
from plugins.slack.config import SlackConfig
from shared.errors import ChannelError

#: How long one Slack Web API call may take, in milliseconds.
DEFAULT_TIMEOUT_MS = 10_000
#: Slack error codes that a later retry may get past (with HTTP 200 or a 5xx).
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def build_client(config: SlackConfig, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> WebClient:
    """A WebClient on the configured API base with the bot token and a timeout."""
    return WebClient(
        token=config.bot_token or None,
        base_url=config.api_url,
        timeout=max(1, timeout_ms // 1000),
    )


@contextmanager
def slack_errors(method: str) -> Iterator[None]:
    """Translate what a Web API call raises into ChannelError, retryable when a retry may help."""
    try:
        yield
    except SlackApiError as error:
        status = error.response.status_code
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        retryable = status == 429 or status >= 500 or code in RETRYABLE_ERRORS
        detail = code or f"HTTP {status}"
        if status == 429:
            after = error.response.headers.get("Retry-After")
            detail = f"rate limited (HTTP 429{f', retry after {after} s' if after else ''})"
        elif status >= 500:
            detail = f"answered HTTP {status}"
        raise ChannelError(f"slack: {method}: {detail}", retryable=retryable) from error
    except OSError as error:  # urllib's URLError, timeouts, refused connections
        raise ChannelError(f"slack: {method}: unreachable ({error})", retryable=True) from error


class SlackChannel:
    """Posts and updates messages; knows nothing about HTTP requests to the plugin."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def deliver(self, payload: Mapping[str, Any]) -> str:
        """Post the ``/send`` payload to its target; the message's ``ts`` is its id."""
        text, blocks = message_blocks(payload)
        with slack_errors("chat.postMessage"):
            response = self.client.chat_postMessage(
                channel=payload["target"].lstrip("#"), text=text, blocks=blocks
            )
        return str(response["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Replace the message ``ts`` in ``channel`` (e.g. to show an approval's decision)."""
        with slack_errors("chat.update"):
            self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
