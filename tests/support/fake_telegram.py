"""A loopback Telegram Bot API speaking the real wire format, and a button presser for the webhook."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import requests

from tests.support.http_server import LocalServer, QuietHandler

BOT = {"id": 5000, "is_bot": True, "first_name": "AisOpsFlow", "username": "aisopsflow_bot"}
METHODS = ("sendMessage", "answerCallbackQuery", "editMessageText", "editMessageReplyMarkup")


@dataclass
class Call:
    """One Bot API request the fake received: the method and its JSON parameters."""

    method: str
    params: dict[str, Any]
    token: str


def _plain(text: str) -> str:
    """What Telegram stores as ``text`` for an HTML message: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class FakeTelegram(LocalServer):
    """A threaded Bot API on 127.0.0.1 for one bot token; ``calls`` records every request."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.failures: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self.lock = threading.Lock()
        self.next_message_id = 42
        self.next_update_id = 1000
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.read_body() or b"{}"
                status, body = fake.answer(self.path, json.loads(raw or b"{}"))
                payload = json.dumps(body).encode()
                self.reply(status, payload, {"Content-Type": "application/json"})

        super().__init__(Handler)

    def fail(
        self, method: str, status: int, description: str, *, retry_after: int | None = None
    ) -> None:
        """The next call of ``method`` answers ``{"ok": false, ...}`` with ``status``."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        self.failures.setdefault(method, deque()).append((status, body))

    def called(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of ``method`` so far."""
        with self.lock:
            return [call.params for call in self.calls if call.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until ``method`` was called ``count`` times; AssertionError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.called(method)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{method} called {len(self.called(method))} times, expected {count}")

    def answer(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", path.split("?")[0])
        if match is None or match.group(1) != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        method = match.group(2)
        with self.lock:
            self.calls.append(Call(method, params, match.group(1)))
            queued = self.failures.get(method)
            if queued:
                return queued.popleft()
            if method not in METHODS:
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            return 200, {"ok": True, "result": self._result(method, params)}

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "answerCallbackQuery":
            return True
        if method == "sendMessage":
            message_id, self.next_message_id = self.next_message_id, self.next_message_id + 1
            chat = params["chat_id"]
            message = {
                "message_id": message_id,
                "from": BOT,
                "chat": {"id": chat, "type": "private" if isinstance(chat, int) else "channel"},
                "date": int(time.time()),
                "text": _plain(params["text"]) if params.get("parse_mode") else params["text"],
            }
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            self.messages[message_id] = message
            return message
        message = dict(self.messages[params["message_id"]])
        if method == "editMessageText":
            message["text"] = params["text"]
            message["edit_date"] = int(time.time())
        markup = params.get("reply_markup") or {}
        if markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        self.messages[params["message_id"]] = message
        return message

    def press(
        self,
        webhook_url: str,
        secret: str,
        message_id: int,
        data: str,
        user: dict[str, Any],
    ) -> requests.Response:
        """POST a ``callback_query`` update, as Telegram does when ``user`` presses a button."""
        with self.lock:
            update_id, self.next_update_id = self.next_update_id, self.next_update_id + 1
            message = dict(self.messages[message_id])
        update = {
            "update_id": update_id,
            "callback_query": {
                "id": str(4_000_000 + update_id),
                "from": {"is_bot": False, "language_code": "en", **user},
                "message": message,
                "chat_instance": "-7000000000000000000",
                "data": data,
            },
        }
        return requests.post(
            webhook_url,
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
            timeout=30,
        )
