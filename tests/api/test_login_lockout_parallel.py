"""Parallel wrong guesses against a real threaded server: the lockout limit holds on every backend."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from shared.db import connection
from shared.models import User
from tests.api.conftest import password_hash

#: Parallel guesses, and the configured failure limit they must not get past.
GUESSES = 40
LIMIT = 10


@pytest.fixture
def served(make_settings: Any, database_url: str) -> Iterator[str]:
    """The API on every backend, served by a threaded server on loopback; its base URL."""
    from api.app import create_app
    from shared.bootstrap import prepare
    from shared.tenancy import ensure_default_tenant

    settings = make_settings(database_url=database_url, login_max_failures=str(LIMIT))
    prepare(settings)
    app = create_app(settings)
    with connection():
        User.create(
            tenant=ensure_default_tenant(settings).id,
            email="victim@example.test",
            password_hash=password_hash(),
            role="viewer",
        )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _guess(url: str, start: threading.Barrier) -> int:
    body = json.dumps({"email": "victim@example.test", "password": "wrong-guess"}).encode()
    request = urllib.request.Request(
        f"{url}/api/login", data=body, headers={"Content-Type": "application/json"}
    )
    start.wait(timeout=30)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_parallel_guesses_evaluate_at_most_the_limit(served: str) -> None:
    # Given 40 wrong guesses for one email sent at the same moment
    start = threading.Barrier(GUESSES)
    results: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        status = _guess(served, start)
        with lock:
            results.append(status)

    threads = [threading.Thread(target=run) for _ in range(GUESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then at most the limit were evaluated (401); every other one was refused unread (429)
    counts = Counter(results)
    assert len(results) == GUESSES
    assert set(counts) <= {401, 429}, counts
    assert counts[401] <= LIMIT, counts
    assert counts[401] + counts[429] == GUESSES
