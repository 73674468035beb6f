"""A signed webhook request is accepted once: a copy sent again within its window is a replay (409)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.serving import make_server

from shared.db import connection
from shared.models import AuditLog, Execution, User, WebhookDelivery, utcnow
from shared.sessions import open_session
from shared.tenancy import ensure_default_tenant

SLACK_STYLE = """
id: sl
name: slack-style
triggers:
  - type: webhook
    auth: {type: hmac, secret: HOOK, header: X-Slack-Signature, prefix: "v0=", timestamp_header: X-Slack-Request-Timestamp}
steps:
  - {id: ok, type: condition, expr: "true"}
"""
GITHUB_STYLE = """
id: gh
name: github-style
triggers:
  - type: webhook
    auth: {type: hmac, secret: HOOK, header: X-Hub-Signature-256, prefix: "sha256=", replay_window_seconds: 86400}
steps:
  - {id: ok, type: condition, expr: "true"}
"""
BODY_ONLY = GITHUB_STYLE.replace("id: gh", "id: plain").replace(
    ", replay_window_seconds: 86400", ""
)
TOKEN = """
id: tok
name: shared token
triggers:
  - type: webhook
    auth: {type: token, secret: HOOK, header: X-Token}
steps:
  - {id: ok, type: condition, expr: "true"}
"""
SECRET = "replay-test-secret"
#: The behaviour is the backend's unique index at work only in the race test; the rest run once.
ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def api(make_settings: Any, database_url: str) -> Any:
    """The API on every backend with the four workflows above and the HOOK secret."""
    from api.app import create_app
    from shared.bootstrap import prepare

    settings = make_settings(database_url=database_url)
    prepare(settings)
    app = create_app(settings)
    with connection():
        admin = User.create(
            tenant=ensure_default_tenant(settings).id,
            email="admin@example.test",
            password_hash="x",
            role="admin",
        )
        token = open_session(settings, admin)[0]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.put("/api/secrets/HOOK", json={"value": SECRET}, headers=headers).status_code in (
        200,
        201,
    )
    for workflow_id, text in (
        ("sl", SLACK_STYLE),
        ("gh", GITHUB_STYLE),
        ("plain", BODY_ONLY),
        ("tok", TOKEN),
    ):
        response = client.put(
            f"/api/workflows/{workflow_id}",
            data=text,
            content_type="application/yaml",
            headers=headers,
        )
        assert response.status_code == 200, response.json
    app.config["TEST_CLIENT"] = client
    return app


def slack_headers(body: bytes, timestamp: int) -> dict[str, str]:
    digest = hmac.new(
        SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256
    ).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(timestamp)}


def github_headers(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery}


def post(app: Any, workflow_id: str, body: bytes, headers: dict[str, str]) -> Any:
    return app.config["TEST_CLIENT"].post(
        f"/api/hooks/{workflow_id}", data=body, content_type="application/json", headers=headers
    )


def executions(workflow_key: str) -> int:
    with connection():
        return (
            Execution.select()
            .join_from(Execution, Execution.workflow.rel_model)
            .where(Execution.workflow.rel_model.workflow_key == workflow_key)
            .count()
        )


@ON_SQLITE
def test_a_timestamp_signed_request_sent_twice_is_refused_the_second_time(api):
    body = b'{"event": "deploy"}'
    headers = slack_headers(body, int(time.time()))

    first = post(api, "sl", body, headers)
    replay = post(api, "sl", body, headers)
    resigned = post(api, "sl", body, slack_headers(body, int(time.time()) + 1))

    assert first.status_code == 202, first.json
    assert replay.status_code == 409
    assert replay.json["code"] == 409 and "replay" in replay.json["message"]
    assert headers["X-Slack-Signature"] not in str(replay.json)
    assert resigned.status_code == 202
    assert executions("sl") == 2
    with connection():
        assert AuditLog.select().where(AuditLog.action == "hook.replay_refused").count() == 1


@ON_SQLITE
def test_a_body_signed_request_with_a_replay_window_is_refused_even_with_a_new_delivery_id(api):
    body = b'{"ref": "refs/heads/main", "after": "abc123"}'

    first = post(api, "gh", body, github_headers(body, "delivery-1"))
    same = post(api, "gh", body, github_headers(body, "delivery-1"))
    relabelled = post(api, "gh", body, github_headers(body, "delivery-2"))
    other_body = post(
        api, "gh", b'{"after": "def456"}', github_headers(b'{"after": "def456"}', "d-3")
    )

    assert first.status_code == 202
    assert same.status_code == 409 and relabelled.status_code == 409
    assert other_body.status_code == 202


@ON_SQLITE
def test_a_delivery_is_accepted_again_once_its_window_has_passed(api):
    body = b'{"after": "abc"}'
    assert post(api, "gh", body, github_headers(body, "a")).status_code == 202
    with connection():
        WebhookDelivery.update(expires_at=utcnow() - timedelta(seconds=1)).execute()

    again = post(api, "gh", body, github_headers(body, "b"))

    assert again.status_code == 202
    with connection():
        assert WebhookDelivery.select().count() == 1  # the expired row was dropped


@ON_SQLITE
def test_schemes_without_replay_protection_accept_a_copy(api):
    # Documented: an HMAC over the body alone without replay_window_seconds, and a shared
    # token, cannot tell a copy from a new request; dedupe_key is the tool there.
    body = b'{"n": 1}'

    plain = [post(api, "plain", body, github_headers(body, "x")).status_code for _ in range(2)]
    token = [post(api, "tok", body, {"X-Token": SECRET}).status_code for _ in range(2)]

    assert plain == [202, 202] and token == [202, 202]


def test_parallel_copies_of_one_signed_request_start_one_execution(api):
    # Given ten copies of one signed request arriving at once at a threaded server
    body = b'{"event": "race"}'
    headers = {**slack_headers(body, int(time.time())), "Content-Type": "application/json"}
    server = make_server("127.0.0.1", 0, api, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api/hooks/sl"
    start = threading.Barrier(10)
    statuses: list[int] = []

    def send() -> None:
        request = urllib.request.Request(url, data=body, headers=headers)
        start.wait(timeout=10)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)

    senders = [threading.Thread(target=send) for _ in range(10)]
    try:
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=60)
    finally:
        server.shutdown()
        server.server_close()

    # Then exactly one was accepted
    assert Counter(statuses) == Counter({202: 1, 409: 9}), statuses
    assert executions("sl") == 1
