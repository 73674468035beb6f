"""The Slack plugin as a real process against a fake Slack Web API, and Slack approvals end to end."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from werkzeug.serving import make_server

from plugins.slack.app import create_app
from plugins.slack.config import load_slack_config
from shared.plugin_token import load_plugin_token
from tests.support.engine_fixtures import Engine
from tests.support.fake_slack import CHANNEL_ID, FakeSlack
from tests.support.processes import Process

BOT_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99e1f5a2c3d4"
SEND = {
    "target": "ops-alerts",
    "title": "Disk almost full",
    "message": "db-1: / is 93% full",
    "severity": "warning",
    "execution_id": "ex_1",
    "step_id": "ask",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlackPlugin:
    """`aisopsflow plugin slack` as a child process, and how to call it."""

    def __init__(self, settings: Any, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = {"Authorization": f"Bearer {load_plugin_token(settings)}"}
        self.process = Process(settings, ["plugin", "slack", "--port", str(self.port)], log_path)

    def start(self) -> SlackPlugin:
        self.process.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.process.poll() is None, self.process.output()
            try:
                requests.post(f"{self.url}/probe", headers=self.auth, timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"the slack plugin did not start\n{self.process.output()}")

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, headers=self.auth, timeout=10)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(bot_token=BOT_TOKEN) as server:
        yield server


@pytest.fixture
def slack_env(monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack) -> None:
    """The plugin's variables; child_environ starts from os.environ, so the process gets them."""
    monkeypatch.setenv("AISOPSFLOW_SLACK_API_URL", fake_slack.api_url)
    monkeypatch.setenv("AISOPSFLOW_SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("AISOPSFLOW_SLACK_SIGNING_SECRET", SIGNING_SECRET)


@pytest.fixture
def plugin(
    slack_env: None, make_settings: Callable[..., Any], tmp_path: Path
) -> Iterator[SlackPlugin]:
    running = SlackPlugin(make_settings(), tmp_path / "slack.log").start()
    yield running
    running.process.stop()


def button(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    actions = next(block for block in blocks if block["type"] == "actions")
    return next(element for element in actions["elements"] if element["action_id"] == action_id)


# --- /send and /probe against the fake Slack ---------------------------------------------


def test_send_posts_a_block_kit_message(plugin, fake_slack):
    response = plugin.post("/send", SEND)

    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "message_id": "1700000000.000100",
        "error": None,
        "retryable": False,
    }
    [call] = fake_slack.calls("chat.postMessage")
    assert call.token == BOT_TOKEN
    assert call.args["channel"] == "ops-alerts"
    assert call.args["text"] == "[warning] Disk almost full: db-1: / is 93% full"
    header, section, context = call.args["blocks"]
    assert header["text"]["text"] == ":warning: Disk almost full"
    assert section["text"] == {"type": "mrkdwn", "text": "db-1: / is 93% full"}
    assert "*warning*" in context["elements"][0]["text"]
    assert not any(block["type"] == "actions" for block in call.args["blocks"])


def test_an_approval_send_has_approve_and_reject_buttons(plugin, fake_slack):
    approval = {"approval_id": "ap_1", "execution_id": "ex_1", "step_id": "ask"}

    response = plugin.post("/send", {**SEND, "target": "#ops", "approval": approval})

    assert response.json()["ok"] is True
    [call] = fake_slack.calls("chat.postMessage")
    assert call.args["channel"] == "ops"
    approve = button(call.args["blocks"], "aisopsflow_approve")
    reject = button(call.args["blocks"], "aisopsflow_reject")
    assert (approve["style"], reject["style"]) == ("primary", "danger")
    assert json.loads(approve["value"]) == {
        "execution_id": "ex_1",
        "step_id": "ask",
        "decision": "approve",
    }
    assert json.loads(reject["value"]) == {
        "execution_id": "ex_1",
        "step_id": "ask",
        "decision": "reject",
    }


@pytest.mark.parametrize(
    ("failure", "error", "retryable"),
    [
        (
            {"status": 429, "retry_after": 7},
            "slack: chat.postMessage: rate limited (HTTP 429, retry after 7 s)",
            True,
        ),
        ({"status": 500}, "slack: chat.postMessage: answered HTTP 500", True),
        ({"error": "ratelimited"}, "slack: chat.postMessage: ratelimited", True),
        ({"error": "channel_not_found"}, "slack: chat.postMessage: channel_not_found", False),
        ({"error": "invalid_auth"}, "slack: chat.postMessage: invalid_auth", False),
    ],
)
def test_slack_errors_say_whether_a_retry_may_help(plugin, fake_slack, failure, error, retryable):
    fake_slack.fail("chat.postMessage", **failure)

    response = plugin.post("/send", SEND)

    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "message_id": None,
        "error": error,
        "retryable": retryable,
    }


def test_unreachable_slack_is_retryable(monkeypatch, plugin_factory):
    monkeypatch.setenv("AISOPSFLOW_SLACK_API_URL", f"http://127.0.0.1:{free_port()}/api/")
    running = plugin_factory()

    body = running.post("/send", SEND).json()

    assert body["ok"] is False and body["retryable"] is True and "unreachable" in body["error"]


def test_a_malformed_send_is_a_permanent_error(plugin, fake_slack):
    response = plugin.post("/send", {"target": "ops", "severity": "loud"})

    assert response.status_code == 200
    assert response.json() == {
        "ok": False,
        "message_id": None,
        "error": "slack: 'severity' must be one of info, warning, critical",
        "retryable": False,
    }
    assert fake_slack.calls() == []


def test_probe_reports_a_complete_configuration(plugin):
    body = plugin.post("/probe", {}).json()

    assert body == {
        "ok": True,
        "plugin": "slack",
        "version": "0.1.0",
        "capabilities": ["send", "approval"],
        "config_ok": True,
        "error": None,
    }


@pytest.fixture
def plugin_factory(slack_env, make_settings, tmp_path) -> Iterator[Callable[[], SlackPlugin]]:
    started: list[SlackPlugin] = []

    def start() -> SlackPlugin:
        started.append(SlackPlugin(make_settings(), tmp_path / f"slack-{len(started)}.log").start())
        return started[-1]

    yield start
    for running in started:
        running.process.stop()


@pytest.mark.parametrize(
    ("unset", "error"),
    [
        ("AISOPSFLOW_SLACK_BOT_TOKEN", "AISOPSFLOW_SLACK_BOT_TOKEN is not set"),
        ("AISOPSFLOW_SLACK_SIGNING_SECRET", "AISOPSFLOW_SLACK_SIGNING_SECRET is not set"),
    ],
)
def test_probe_names_a_missing_variable(monkeypatch, plugin_factory, unset, error):
    monkeypatch.delenv(unset)
    running = plugin_factory()

    body = running.post("/probe", {}).json()

    assert (body["config_ok"], body["error"]) == (False, error)


def test_send_without_a_bot_token_is_a_permanent_error(monkeypatch, plugin_factory, fake_slack):
    monkeypatch.delenv("AISOPSFLOW_SLACK_BOT_TOKEN")

    body = plugin_factory().post("/send", SEND).json()

    assert body == {
        "ok": False,
        "message_id": None,
        "error": "slack: AISOPSFLOW_SLACK_BOT_TOKEN is not set",
        "retryable": False,
    }
    assert fake_slack.calls() == []


def test_malformed_settings_stop_the_plugin_with_one_line_each(
    monkeypatch, slack_env, make_settings, tmp_path
):
    monkeypatch.setenv("AISOPSFLOW_SLACK_API_URL", "slack.example")
    monkeypatch.setenv("AISOPSFLOW_SLACK_BOT_TOKEN", "not a token")
    process = Process(
        make_settings(), ["plugin", "slack", "--port", str(free_port())], tmp_path / "bad.log"
    ).start()

    code = process.process.wait(timeout=30)

    lines = process.output().strip().splitlines()
    assert code == 1
    assert lines == [
        "aisopsflow: error: AISOPSFLOW_SLACK_API_URL='slack.example': expected an http(s):// URL",
        "AISOPSFLOW_SLACK_BOT_TOKEN: expected a Slack token such as xoxb-..., without spaces",
    ]


# --- interactions: signed by Slack, resolved in Core --------------------------------------


def signed(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack sends: v0 HMAC-SHA256 over ``v0:<timestamp>:<body>``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def click(fake_slack: FakeSlack, user_id: str, action_id: str) -> str:
    """The form body Slack posts when ``user_id`` clicks a button of the last posted message."""
    posted = fake_slack.calls("chat.postMessage")[-1]
    ts = "1700000000.000100"
    clicked = button(posted.args["blocks"], action_id)
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "kim", "name": "kim", "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": CHANNEL_ID,
            "is_ephemeral": False,
        },
        "trigger_id": "1700000001.1.abcdef",
        "team": {"id": "T0TEAM", "domain": "example"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": CHANNEL_ID, "name": posted.args["channel"]},
        "message": {
            "type": "message",
            "user": "U0BOT",
            "bot_id": "B0BOT",
            "ts": ts,
            "text": posted.args["text"],
            "blocks": posted.args["blocks"],
        },
        "state": {"values": {}},
        "response_url": f"{fake_slack.url}/actions/T0TEAM/1/response-token",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "aisopsflow_approval",
                "text": clicked["text"],
                "value": clicked["value"],
                "style": clicked["style"],
                "action_ts": "1700000001.000200",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


@pytest.fixture
def slack_engine(
    slack_env, make_settings: Callable[..., Any], tmp_path: Path
) -> Iterator[tuple[Engine, SlackPlugin]]:
    """The engine fixture, but Core is served over HTTP and the Slack plugin is a real process."""
    from api.app import create_app
    from shared.bootstrap import prepare
    from shared.db import connection
    from shared.models import User
    from shared.sessions import open_session
    from shared.tenancy import tenant_by_slug

    api_port, plugin_port = free_port(), free_port()
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        redis_namespace=f"t-{uuid.uuid4().hex[:12]}",
        worker_processes="1",
        worker_threads="4",
        core_url=f"http://127.0.0.1:{api_port}",
        plugin_urls=f"slack=http://127.0.0.1:{plugin_port}",
    )
    prepare(settings)
    app = create_app(settings)
    with connection():
        tenant = tenant_by_slug(settings.default_tenant_slug)
        admin = User.create(
            tenant=tenant, email="admin@example.test", password_hash="x", role="admin"
        )
        token = open_session(settings, admin)[0]
    server = make_server("127.0.0.1", api_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    worker = Process(settings, ["worker"], tmp_path / "worker.log").start()
    scheduler = Process(settings, ["scheduler"], tmp_path / "scheduler.log").start()
    plugin = SlackPlugin(settings, tmp_path / "slack.log", plugin_port).start()
    yield Engine(app.test_client(), settings, token, tenant.id, worker, scheduler, tmp_path), plugin
    plugin.process.stop()
    worker.stop()
    scheduler.stop()
    server.shutdown()


def gate_workflow(recipient_id: str) -> str:
    return f"""
id: slack-gate
name: approve from Slack
triggers:
  - type: webhook
steps:
  - id: ask
    type: approval
    message: Restart db-1?
    notify: [slack.ops]
    approvers: ["recipient:{recipient_id}"]
  - id: after
    type: condition
    expr: "true"
"""


@pytest.fixture
def waiting(slack_engine, fake_slack) -> tuple[Engine, SlackPlugin, str]:
    """An execution waiting on an approval whose Slack message reached the fake."""
    engine, plugin = slack_engine
    recipient = engine.client.post(
        "/api/recipients", json={"name": "Kim", "slack_id": "U123"}, headers=engine.headers()
    )
    assert recipient.status_code == 201, recipient.json
    engine.put_workflow("slack-gate", gate_workflow(recipient.json["id"]))
    execution_id = engine.hook("slack-gate", {}).json["execution_id"]
    engine.wait_for(execution_id, ("waiting_approval",))
    deadline = time.monotonic() + 10
    while not fake_slack.calls("chat.postMessage") and time.monotonic() < deadline:
        time.sleep(0.05)
    return engine, plugin, execution_id


def interact(plugin: SlackPlugin, body: str, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{plugin.url}/slack/interactions", data=body, headers=headers, timeout=10)


def test_slack_approval_end_to_end(waiting, fake_slack):
    engine, plugin, execution_id = waiting
    [posted] = fake_slack.calls("chat.postMessage")
    approve = json.loads(button(posted.args["blocks"], "aisopsflow_approve")["value"])
    body = click(fake_slack, "U123", "aisopsflow_approve")

    forged = interact(plugin, body, signed(body, secret="not-the-signing-secret"))
    stale = interact(plugin, body, signed(body, timestamp=int(time.time()) - 6 * 60))
    unsigned = interact(plugin, body, {"Content-Type": "application/x-www-form-urlencoded"})
    outsider_body = click(fake_slack, "U999", "aisopsflow_approve")
    outsider = interact(plugin, outsider_body, signed(outsider_body))
    still = engine.execution(execution_id)

    assert posted.args["channel"] == "ops"
    assert approve == {"execution_id": execution_id, "step_id": "ask", "decision": "approve"}
    for refused in (forged, stale, unsigned):
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_signature"
    assert outsider.status_code == 200
    assert outsider.json() == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "You are not allowed to decide this approval.",
    }
    [ephemeral] = fake_slack.calls("/actions/T0TEAM/1/response-token")
    assert ephemeral.args["text"] == "You are not allowed to decide this approval."
    assert still["status"] == "waiting_approval"
    assert still["approvals"][0]["decisions"] == []
    assert fake_slack.calls("chat.update") == []

    decided = interact(plugin, body, signed(body))
    view = engine.wait_for(execution_id)

    assert decided.status_code == 200 and decided.content == b""
    assert view["status"] == "succeeded"
    decision = view["approvals"][0]["decisions"][0]
    assert (decision["actor"], decision["channel"], decision["decision"]) == (
        "slack:U123",
        "slack",
        "approve",
    )
    [update] = fake_slack.calls("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (CHANNEL_ID, "1700000000.000100")
    last = update.args["blocks"][-1]["elements"][0]["text"]
    assert last.startswith(":white_check_mark: Approved by <@U123> at ") and last.endswith(" UTC")
    assert not any(block["type"] == "actions" for block in update.args["blocks"])


def test_a_second_click_after_the_decision_is_refused(waiting, fake_slack):
    engine, plugin, execution_id = waiting
    reject = click(fake_slack, "U123", "aisopsflow_reject")
    interact(plugin, reject, signed(reject))
    view = engine.wait_for(execution_id)

    again = click(fake_slack, "U123", "aisopsflow_approve")
    answer = interact(plugin, again, signed(again)).json()

    assert view["status"] == "rejected"
    assert answer["response_type"] == "ephemeral"
    assert "already resolved: rejected by slack:U123" in answer["text"]
    [update] = fake_slack.calls("chat.update")
    assert update.args["blocks"][-1]["elements"][0]["text"].startswith(
        ":x: Rejected by <@U123> at "
    )


# --- in process: settings, and what the interaction endpoint refuses ------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "AISOPSFLOW_SLACK_BOT_TOKEN and AISOPSFLOW_SLACK_SIGNING_SECRET are not set"),
        ({"AISOPSFLOW_SLACK_BOT_TOKEN": BOT_TOKEN}, "AISOPSFLOW_SLACK_SIGNING_SECRET is not set"),
        (
            {"AISOPSFLOW_SLACK_BOT_TOKEN": BOT_TOKEN, "AISOPSFLOW_SLACK_SIGNING_SECRET": "s"},
            None,
        ),
    ],
)
def test_config_names_what_is_missing(environ, expected):
    config = load_slack_config(environ)

    assert config.api_url == "https://slack.com/api/"
    assert config.missing() == expected


def test_the_api_url_gets_the_trailing_slash_slack_sdk_needs():
    config = load_slack_config({"AISOPSFLOW_SLACK_API_URL": "http://127.0.0.1:9/api"})

    assert config.api_url == "http://127.0.0.1:9/api/"


@pytest.fixture
def interactions_client(make_settings):
    environ = {
        "AISOPSFLOW_SLACK_BOT_TOKEN": BOT_TOKEN,
        "AISOPSFLOW_SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    return create_app(make_settings(), environ=environ).test_client()


def test_other_interaction_types_are_acknowledged_and_ignored(interactions_client):
    body = urlencode({"payload": json.dumps({"type": "view_submission", "user": {"id": "U1"}})})

    response = interactions_client.post("/slack/interactions", data=body, headers=signed(body))

    assert (response.status_code, response.data) == (200, b"")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": str(int(time.time()) + 6 * 60)},
    ],
)
def test_malformed_signature_headers_are_401(interactions_client, headers):
    response = interactions_client.post(
        "/slack/interactions", data="payload=%7B%7D", headers=headers
    )

    assert response.status_code == 401 and response.get_json()["code"] == "invalid_signature"


def test_an_oversize_interaction_is_413(interactions_client):
    body = "payload=" + "x" * (1024 * 1024)

    response = interactions_client.post("/slack/interactions", data=body, headers=signed(body))

    assert response.status_code == 413


def test_without_a_signing_secret_interactions_are_refused(make_settings):
    client = create_app(make_settings(), environ={}).test_client()

    response = client.post("/slack/interactions", data="payload=%7B%7D")

    assert response.status_code == 503
    assert "AISOPSFLOW_SLACK_SIGNING_SECRET is not set" in response.get_json()["message"]
