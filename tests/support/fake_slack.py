"""A loopback fake of Slack's Web API (chat.postMessage, chat.update) and of response_url.

It speaks the real wire format: slack_sdk's JSON or form bodies, a bearer token, HTTP 200
with ``{"ok": false, "error": ...}`` for API errors, 429 with Retry-After, and 5xx.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from plugins.base import bearer_token
from tests.support.http_server import LocalServer, QuietHandler

#: Where Web API methods live: slack_sdk posts to ``<base_url><method>``.
API_PREFIX = "/api/"
CHANNEL_ID = "C123"
#: Form fields slack_sdk sends JSON-encoded.
JSON_FORM_FIELDS = ("blocks", "attachments", "metadata")


@dataclass
class SlackCall:
    """One request the fake received: Web API method (or response_url path) and its arguments."""

    method: str
    args: dict[str, Any]
    token: str
    headers: dict[str, str]


@dataclass
class Failure:
    """A scripted answer: an API error (HTTP 200), or an HTTP status with its body."""

    error: str | None = None
    status: int = 200
    retry_after: int | None = None
    body: str | None = None


@dataclass
class _State:
    calls: list[SlackCall] = field(default_factory=list)
    failures: dict[str, deque[Failure]] = field(default_factory=lambda: defaultdict(deque))
    sequence: int = 0


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        return json.loads(raw)
    args: dict[str, Any] = {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
    for key in JSON_FORM_FIELDS:
        if isinstance(args.get(key), str):
            args[key] = json.loads(args[key])
    return args


class FakeSlack(LocalServer):
    """A threaded HTTP server on 127.0.0.1; ``api_url`` is the WebClient ``base_url``."""

    def __init__(self, *, bot_token: str = "xoxb-fake-token") -> None:  # noqa: S107 - a fake
        self.bot_token = bot_token
        self.state = _State()
        self.lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.read_body()
                args = _parse_body(self.headers.get("Content-Type", ""), raw)
                token = bearer_token(self.headers.get("Authorization")) or args.pop("token", "")
                path = self.path.split("?")[0]
                method = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
                status, body, headers = fake._answer(
                    SlackCall(method, args, token, dict(self.headers)), path.startswith(API_PREFIX)
                )
                self.reply(status, body, headers)

        super().__init__(Handler)

    @property
    def api_url(self) -> str:
        """What AISOPSFLOW_SLACK_API_URL should be (ends with "/", as slack_sdk expects)."""
        return self.url + API_PREFIX

    def fail(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail: ``error`` or HTTP ``status``."""
        with self.lock:
            for _ in range(times):
                self.state.failures[method].append(Failure(error, status, retry_after))

    def calls(self, method: str | None = None) -> list[SlackCall]:
        """Every call so far (of ``method`` only, when given), oldest first."""
        with self.lock:
            return [call for call in self.state.calls if method in (None, call.method)]

    def _answer(self, call: SlackCall, is_api: bool) -> tuple[int, bytes, dict[str, str]]:
        with self.lock:
            self.state.calls.append(call)
            queued = self.state.failures.get(call.method)
            failure = queued.popleft() if queued else None
            self.state.sequence += 1
            ts = f"1700000000.{self.state.sequence * 100:06d}"
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if failure is not None and failure.status >= 500:
            return (
                failure.status,
                b"<html><body>Internal Server Error</body></html>",
                {"Content-Type": "text/html"},
            )
        if failure is not None and failure.status == 429:
            headers["Retry-After"] = str(failure.retry_after or 1)
            return 429, json.dumps({"ok": False, "error": "ratelimited"}).encode(), headers
        if not is_api:  # a response_url: Slack answers "ok" in plain text
            return 200, b"ok", {"Content-Type": "text/plain"}
        body = self._api_body(call, failure, ts)
        return 200, json.dumps(body).encode(), headers

    def _api_body(self, call: SlackCall, failure: Failure | None, ts: str) -> dict[str, Any]:
        if not call.token:
            return {"ok": False, "error": "not_authed"}
        if call.token != self.bot_token:
            return {"ok": False, "error": "invalid_auth"}
        if failure is not None and failure.error:
            return {"ok": False, "error": failure.error}
        args = call.args
        message = {
            "type": "message",
            "text": args.get("text", ""),
            "blocks": args.get("blocks", []),
        }
        if call.method == "chat.postMessage":
            if not args.get("channel"):
                return {"ok": False, "error": "channel_not_found"}
            message.update(user="U0BOT", bot_id="B0BOT", ts=ts)
            return {"ok": True, "channel": CHANNEL_ID, "ts": ts, "message": message}
        if call.method == "chat.update":
            if not args.get("channel") or not args.get("ts"):
                return {"ok": False, "error": "message_not_found"}
            return {
                "ok": True,
                "channel": args["channel"],
                "ts": args["ts"],
                "text": args.get("text", ""),
                "message": message,
            }
        return {"ok": False, "error": "unknown_method"}
