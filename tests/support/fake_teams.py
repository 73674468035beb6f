"""A loopback Teams incoming webhook: records posted cards, answers ``1`` or a scripted failure."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeTeams:
    """A threaded webhook on 127.0.0.1; ``posts`` holds (path, card) per request."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.failures: deque[tuple[int, str]] = deque()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.posts.append((self.path, json.loads(raw or b"null")))
                    status, text = fake.failures.popleft() if fake.failures else (200, "1")
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, status: int, text: str = "") -> None:
        """The next post answers ``status`` with ``text``."""
        with self.lock:
            self.failures.append((status, text))

    def __enter__(self) -> FakeTeams:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
