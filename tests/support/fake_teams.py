"""A loopback Teams incoming webhook: records posted cards, answers ``1`` or a scripted failure."""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from tests.support.http_server import LocalServer, QuietHandler


class FakeTeams(LocalServer):
    """A threaded webhook on 127.0.0.1; ``posts`` holds (path, card) per request."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.failures: deque[tuple[int, str]] = deque()
        self.lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.read_body()
                with fake.lock:
                    fake.posts.append((self.path, json.loads(raw or b"null")))
                    status, text = fake.failures.popleft() if fake.failures else (200, "1")
                payload = text.encode()
                self.reply(status, payload, {"Content-Type": "text/plain; charset=utf-8"})

        super().__init__(Handler)

    def fail(self, status: int, text: str = "") -> None:
        """The next post answers ``status`` with ``text``."""
        with self.lock:
            self.failures.append((status, text))
