"""A costly trigger template fails fast with a 422, and the API keeps answering meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.bootstrap import prepare
from shared.db import connection
from shared.tenancy import tenant_by_slug
from shared.workflows import put_workflow
from tests.support.processes import Process
from tests.support.smtp_server import free_port

START_TIMEOUT_SECONDS = 30
#: Concurrent webhook posts: as many as the API has threads (2 workers x 4 threads).
POSTS = 8
#: Longest /healthz may take to answer while the posts run, in seconds.
HEALTH_ANSWER_SECONDS = 3

NESTED_LOOPS = """\
id: storm
name: Nested loops in a dedupe key
triggers:
  - type: webhook
    dedupe_key: "{% for a in range(100000) %}{% for b in range(100000) %}{% if a == b %}{% endif %}{% endfor %}{% endfor %}"
steps:
  - id: only
    type: condition
    expr: "true"
"""


@pytest.fixture
def api_url(make_settings: Any, tmp_path: Path) -> Iterator[str]:
    """The API under gunicorn (as `aisopsflow up` runs it) with the nested-loop workflow stored."""
    port = free_port()
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        api_host="127.0.0.1",
        api_port=str(port),
        api_workers="2",
    )
    prepare(settings)
    with connection():
        put_workflow(tenant_by_slug("default").id, "storm", NESTED_LOOPS, actor="test")
    api = Process(settings, ["api"], tmp_path / "api.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(f"{url}/healthz"):
            assert api.process.poll() is None, api.output()
            assert time.monotonic() < deadline, f"the API did not start\n{api.output()[-3000:]}"
            time.sleep(0.1)
        yield url
    finally:
        api.stop()


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


def _post(url: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = requests.post(f"{url}/api/hooks/storm", json={"n": 1}, timeout=30)
    return response.status_code, response.json(), time.monotonic() - started


def _health(url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = requests.get(f"{url}/healthz", timeout=HEALTH_ANSWER_SECONDS).status_code
    except requests.RequestException as error:
        status = f"no answer: {type(error).__name__}"  # type: ignore[assignment]
    return status, time.monotonic() - started


def test_nested_loops_in_a_dedupe_key_fail_fast_while_healthz_answers(api_url):
    with ThreadPoolExecutor(max_workers=POSTS) as pool:
        posts = [pool.submit(_post, api_url) for _ in range(POSTS)]
        health = []
        while not all(post.done() for post in posts) and len(health) < 20:
            health.append(_health(api_url))
            time.sleep(0.05)
        results = [post.result() for post in posts]

    assert health, "no /healthz poll ran while the posts were in flight"
    for status, seconds in health:
        # 503 is an answer too: no scheduler runs in this test.
        assert status in (200, 503) and seconds < HEALTH_ANSWER_SECONDS, health
    for status, body, seconds in results:
        assert status == 422, body
        assert body["code"] == 422
        assert "too much work" in body["message"]
        assert "the limit for trigger templates" in body["message"]
        assert seconds < 10
    after = _health(api_url)
    assert after[0] in (200, 503) and after[1] < HEALTH_ANSWER_SECONDS
