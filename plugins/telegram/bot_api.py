"""The Bot API client: ``POST {api}/bot{token}/{method}``, errors classified, the token scrubbed."""

from __future__ import annotations

import logging
from typing import Any

import requests

from shared.errors import ChannelError

#: How long to wait for the Bot API to accept a connection, in milliseconds.
DEFAULT_CONNECT_TIMEOUT_MS = 3000
#: How long to wait for the Bot API's answer, in milliseconds.
DEFAULT_READ_TIMEOUT_MS = 10_000
SCRUBBED = "<bot token>"


def scrub(text: str, token: str) -> str:
    """``text`` without the bot token (it is part of every Bot API URL)."""
    return text.replace(token, SCRUBBED) if token else text


class TokenScrubber(logging.Filter):
    """Rewrites log records so the bot token never reaches a log (urllib3 logs request paths)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            record.msg = scrub(record.getMessage(), self.token)
            record.args = None
            if record.exc_info:
                # Tracebacks quote request URLs too; format the traceback now and scrub it.
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text, record.exc_info = scrub(text, self.token), None
        return True


def guard_logs(token: str) -> None:
    """Install :class:`TokenScrubber` on the loggers that see Bot API URLs."""
    for name in ("urllib3.connectionpool", "plugins.telegram"):
        logging.getLogger(name).addFilter(TokenScrubber(token))


class BotApi:
    """Calls Bot API methods with JSON bodies; failures raise ChannelError (retryable or not)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        connect_timeout_ms: int = DEFAULT_CONNECT_TIMEOUT_MS,
        read_timeout_ms: int = DEFAULT_READ_TIMEOUT_MS,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.session = session or requests.Session()
        self.timeout = (connect_timeout_ms / 1000, read_timeout_ms / 1000)

    def call(self, method: str, payload: dict[str, Any]) -> Any:
        """The ``result`` of ``method``; ChannelError, retryable for 429, 5xx and no answer."""
        url = f"{self.api_url}/bot{self.token}/{method}"
        try:
            response = self.session.post(url, json=payload, timeout=self.timeout)
        except requests.RequestException as error:
            # The exception's text holds the URL, so the token: name only its type.
            raise ChannelError(
                f"telegram: no answer from the Bot API at {self.api_url} to {method} "
                f"({type(error).__name__})",
                retryable=True,
            ) from None
        retryable = response.status_code == 429 or response.status_code >= 500
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        if not isinstance(body, dict) or not body.get("description"):
            raise ChannelError(
                f"telegram answered HTTP {response.status_code} to {method}", retryable=retryable
            )
        message = f"telegram: {body['description']}"
        retry_after = (body.get("parameters") or {}).get("retry_after")
        if retry_after is not None:
            message += f" (retry after {retry_after} s)"
        raise ChannelError(scrub(message, self.token), retryable=retryable)
