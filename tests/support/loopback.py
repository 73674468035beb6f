"""A loopback HTTP server whose answers a test scripts: status sequences, delays, hit counts."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.support.http_server import LocalServer, QuietHandler


@dataclass
class Route:
    """How one path answers: statuses in turn (the last repeats), a body ("echo": the request's), a delay in seconds, extra headers (e.g. Location)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    body: Any = field(default_factory=dict)
    delay_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Loopback(LocalServer):
    """A threaded HTTP server on ``host`` (127.0.0.1) recording every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.lock = threading.Lock()
        loopback = self

        class Handler(QuietHandler):
            def _answer(self) -> None:
                raw = self.read_body()
                if len(raw) < int(self.headers.get("Content-Length") or 0):
                    return  # the sender died mid-request: nothing was delivered
                path = self.path.split("?")[0]
                route = loopback.routes.get(path, Route())
                with loopback.lock:
                    number = len(loopback.hits[path])
                    loopback.hits[path].append(
                        {
                            "at": time.monotonic(),
                            # Wall clock, to compare with times the engine stores.
                            "received_at": time.time(),
                            "headers": dict(self.headers),
                            "body": raw.decode("utf-8", "replace"),
                            "path": self.path,
                        }
                    )
                if route.delay_seconds:
                    time.sleep(route.delay_seconds)
                status = route.statuses[min(number, len(route.statuses) - 1)]
                payload = raw if route.body == "echo" else json.dumps(route.body).encode()
                self.reply(status, payload, {"Content-Type": "application/json", **route.headers})

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815

        super().__init__(Handler, host)

    def route(self, path: str, **kwargs: Any) -> None:
        """Script the answers of ``path``."""
        self.routes[path] = Route(**kwargs)

    def count(self, path: str) -> int:
        """Requests received on ``path`` so far."""
        with self.lock:
            return len(self.hits[path])
