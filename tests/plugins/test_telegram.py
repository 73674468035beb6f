"""The Telegram plugin as a real process against a fake Bot API; approval by button end to end."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from plugins.telegram.callback_data import MAX_BYTES, CallbackKeys, decode, encode
from plugins.telegram.config import load_config
from shared.errors import SettingsError
from shared.plugin_token import load_plugin_token
from tests.support.fake_telegram import FakeTelegram
from tests.support.processes import Process

BOT_TOKEN = "123456:AAH-fake-bot-token_for_tests"
SECRET = "webhook-secret-1"
EXECUTION = "ex_019a2b3c4d5e6f708192a3b4c5d6e7f8"
APPROVER = {"id": 777, "first_name": "Ada", "username": "ada"}
STRANGER = {"id": 999, "first_name": "Mallory"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, token: str, process: Process, timeout: float = 30.0) -> None:
    """Poll ``POST url/probe`` until it answers 200; fail with the process's output otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = requests.post(
                f"{url}/probe", headers={"Authorization": f"Bearer {token}"}, timeout=2
            )
            if response.status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"plugin at {url} did not start\n{process.output()[-4000:]}")


@dataclass
class Plugin:
    """A running Telegram plugin process, its fake Bot API, and how to call it."""

    url: str
    token: str
    fake: FakeTelegram
    process: Process

    def send(self, **body: Any) -> dict[str, Any]:
        body.setdefault("message", "db-1: / is 93% full")
        body.setdefault("title", "Disk almost full")
        body.setdefault("severity", "warning")
        response = requests.post(
            f"{self.url}/send",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()


def telegram_environ(monkeypatch: pytest.MonkeyPatch, fake: FakeTelegram, **extra: str) -> None:
    """The plugin's upstream settings in os.environ, which child processes inherit."""
    monkeypatch.setenv("AISOPSFLOW_TELEGRAM_API_URL", fake.url)
    monkeypatch.setenv("AISOPSFLOW_TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("AISOPSFLOW_TELEGRAM_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("AISOPSFLOW_TELEGRAM_ALIASES", "ops=-1001234567890,news=@aof_news")
    for key, value in extra.items():
        monkeypatch.setenv(f"AISOPSFLOW_TELEGRAM_{key.upper()}", value)


def start_plugin(settings: Any, fake: FakeTelegram, log: Path, port: int | None = None) -> Plugin:
    port = port or free_port()
    token = load_plugin_token(settings)
    process = Process(settings, ["plugin", "telegram", "--port", str(port)], log).start()
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, token, process)
    return Plugin(url, token, fake, process)


@pytest.fixture
def plugin(make_settings, monkeypatch, tmp_path) -> Iterator[Plugin]:
    with FakeTelegram(BOT_TOKEN) as fake:
        telegram_environ(monkeypatch, fake)
        started = start_plugin(make_settings(log_level="DEBUG"), fake, tmp_path / "telegram.log")
        yield started
        started.process.stop()


# ---- pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "step_id", "stateless"),
    [
        ("approve", "ask", True),
        ("reject", "ask", True),
        ("approve", "s" * 39, True),
        ("approve", "s" * 40, False),
        ("reject", "S_" + "x" * 62, False),
    ],
)
def test_callback_data_fits_64_bytes_and_round_trips(decision, step_id, stateless):
    keys = CallbackKeys()

    data = encode(decision, EXECUTION, step_id, keys)

    assert len(data.encode()) <= MAX_BYTES
    assert ("|" in data) is stateless
    assert decode(data, keys) == (decision, EXECUTION, step_id)
    # The stateless form needs no memory: a restarted plugin still understands it.
    assert (decode(data, CallbackKeys()) is not None) is stateless


@pytest.mark.parametrize("data", ["", "x|abc|ask", "a|short|ask", "a|" + "A" * 22 + "|", "a#nokey"])
def test_unknown_callback_data_decodes_to_none(data):
    assert decode(data, CallbackKeys()) is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AISOPSFLOW_TELEGRAM_ALIASES": "ops"}, "AISOPSFLOW_TELEGRAM_ALIASES"),
        ({"AISOPSFLOW_TELEGRAM_ALIASES": "ops=chat name"}, "AISOPSFLOW_TELEGRAM_ALIASES"),
        ({"AISOPSFLOW_TELEGRAM_API_URL": "api.telegram.org"}, "AISOPSFLOW_TELEGRAM_API_URL"),
        ({"AISOPSFLOW_TELEGRAM_WEBHOOK_SECRET": "has space"}, "AISOPSFLOW_TELEGRAM_WEBHOOK"),
    ],
)
def test_bad_settings_name_their_variable(environ, message):
    with pytest.raises(SettingsError, match=message):
        load_config(environ)


def test_config_defaults_and_aliases():
    config = load_config({"AISOPSFLOW_TELEGRAM_ALIASES": "ops=-100123, news=@aof_news"})

    assert config.api_url == "https://api.telegram.org"
    assert config.problem() == "AISOPSFLOW_TELEGRAM_BOT_TOKEN is not set"
    assert [config.chat_id(t) for t in ("ops", "news", "42", "@other")] == [
        -100123,
        "@aof_news",
        42,
        "@other",
    ]


# ---- the plugin process against the fake Bot API -----------------------------------------


def test_send_posts_sendmessage_with_chat_id_and_escaped_html(plugin):
    answer = plugin.send(target="12345", message="load <5 & rising", title="CPU <high>")

    assert answer == {"ok": True, "message_id": "42", "error": None, "retryable": False}
    (sent,) = plugin.fake.called("sendMessage")
    assert sent["chat_id"] == 12345 and sent["parse_mode"] == "HTML"
    assert sent["text"] == "<b>CPU &lt;high&gt;</b>\n⚠️ Severity: warning\n\nload &lt;5 &amp; rising"
    assert "reply_markup" not in sent


@pytest.mark.parametrize(
    ("target", "chat_id"), [("ops", -1001234567890), ("news", "@aof_news"), ("@direct", "@direct")]
)
def test_aliases_and_channel_names_resolve(plugin, target, chat_id):
    assert plugin.send(target=target)["ok"] is True
    assert plugin.fake.called("sendMessage")[0]["chat_id"] == chat_id


def test_unknown_alias_is_a_permanent_error_and_nothing_is_sent(plugin):
    answer = plugin.send(target="nobody")

    assert answer["ok"] is False and answer["retryable"] is False
    assert "'nobody'" in answer["error"] and "AISOPSFLOW_TELEGRAM_ALIASES" in answer["error"]
    assert plugin.fake.called("sendMessage") == []


def test_approval_gets_an_approve_reject_keyboard(plugin):
    approval = {"approval_id": "ap_1", "execution_id": EXECUTION, "step_id": "ask"}

    plugin.send(target="ops", approval=approval)

    (row,) = plugin.fake.called("sendMessage")[0]["reply_markup"]["inline_keyboard"]
    assert [button["text"] for button in row] == ["Approve", "Reject"]
    decoded = [decode(button["callback_data"], CallbackKeys()) for button in row]
    assert decoded == [("approve", EXECUTION, "ask"), ("reject", EXECUTION, "ask")]


def test_429_is_retryable_and_names_retry_after(plugin):
    plugin.fake.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)

    answer = plugin.send(target="ops")

    assert answer["ok"] is False and answer["retryable"] is True
    assert answer["error"] == "telegram: Too Many Requests: retry after 7 (retry after 7 s)"


def test_chat_not_found_is_not_retryable(plugin):
    plugin.fake.fail("sendMessage", 400, "Bad Request: chat not found")

    answer = plugin.send(target="ops")

    assert answer == {
        "ok": False,
        "message_id": None,
        "error": "telegram: Bad Request: chat not found",
        "retryable": False,
    }


def test_unreachable_bot_api_is_retryable_and_the_token_never_shows(
    make_settings, monkeypatch, tmp_path
):
    with FakeTelegram(BOT_TOKEN) as fake:
        telegram_environ(monkeypatch, fake, api_url=f"http://127.0.0.1:{free_port()}")
        plugin = start_plugin(make_settings(log_level="DEBUG"), fake, tmp_path / "tg.log")
        try:
            answer = plugin.send(target="ops")
        finally:
            plugin.process.stop()

    assert answer["ok"] is False and answer["retryable"] is True
    assert "no answer from the Bot API" in answer["error"]
    assert BOT_TOKEN not in answer["error"]
    assert BOT_TOKEN not in plugin.process.output()


def test_the_bot_token_stays_out_of_the_debug_log(plugin):
    plugin.send(target="ops")
    plugin.send(target="ops", approval={"execution_id": EXECUTION, "step_id": "ask"})

    output = plugin.process.output()
    assert "sendMessage" in output  # urllib3 logged the request line, token scrubbed
    assert BOT_TOKEN not in output


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}])
def test_webhook_without_the_secret_is_401(plugin, headers):
    response = requests.post(
        f"{plugin.url}/telegram/webhook", json={"update_id": 1}, headers=headers, timeout=10
    )

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_webhook_ignores_other_updates_and_expired_buttons_get_an_answer(plugin):
    other = requests.post(
        f"{plugin.url}/telegram/webhook",
        json={"update_id": 1, "message": {"text": "hi"}},
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        timeout=10,
    )
    plugin.send(target="ops")

    pressed = plugin.fake.press(f"{plugin.url}/telegram/webhook", SECRET, 42, "a#gone", APPROVER)

    assert other.status_code == 200 and pressed.status_code == 200
    (answer,) = plugin.fake.called("answerCallbackQuery")
    assert "expired" in answer["text"]


def test_probe_reports_a_missing_bot_token(make_settings, monkeypatch):
    from plugins.telegram.app import create_app

    monkeypatch.delenv("AISOPSFLOW_TELEGRAM_BOT_TOKEN", raising=False)
    settings = make_settings()
    client = create_app(settings).test_client()
    auth = {"Authorization": f"Bearer {load_plugin_token(settings)}"}

    body = client.post("/probe", headers=auth).get_json()
    sent = client.post("/send", headers=auth, json={"target": "1", "message": "m"}).get_json()

    assert body["config_ok"] is False
    assert body["error"] == "AISOPSFLOW_TELEGRAM_BOT_TOKEN is not set"
    assert sent["ok"] is False and "AISOPSFLOW_TELEGRAM_BOT_TOKEN" in sent["error"]


# ---- approval by button, end to end --------------------------------------------------------


@dataclass
class Stack:
    """API, worker, scheduler and Telegram plugin as real processes, the fake Bot API, a token."""

    api: str
    token: str
    plugin: Plugin
    processes: list[Process]

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.api}{path}", headers=headers, timeout=30, **kwargs)

    def wait_for(self, execution_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            view = self.call("GET", f"/api/executions/{execution_id}").json()
            if view["status"] in statuses:
                return view
            time.sleep(0.1)
        logs = "\n".join(p.output()[-3000:] for p in self.processes)
        raise AssertionError(f"execution still {view['status']}: {view}\n{logs}")


def wait_for_health(url: str, process: Process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the API did not become healthy\n{process.output()[-4000:]}")


@pytest.fixture
def stack(make_settings: Callable[..., Any], monkeypatch, tmp_path) -> Iterator[Stack]:
    """Like the ``engine`` fixture, but the API is a process too: the plugin calls it over HTTP."""
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
        api_port=str(api_port),
        api_workers="1",
        core_url=f"http://127.0.0.1:{api_port}",
        plugin_urls=f"telegram=http://127.0.0.1:{plugin_port}",
    )
    prepare(settings)
    with connection():
        tenant = tenant_by_slug(settings.default_tenant_slug)
        admin = User.create(
            tenant=tenant, email="admin@example.test", password_hash="x", role="admin"
        )
        token = open_session(settings, admin)[0]
    with FakeTelegram(BOT_TOKEN) as fake:
        telegram_environ(monkeypatch, fake)
        processes = [
            Process(settings, [name], tmp_path / f"{name}.log").start()
            for name in ("worker", "scheduler", "api")
        ]
        try:
            plugin = start_plugin(settings, fake, tmp_path / "telegram.log", plugin_port)
            processes.append(plugin.process)
            wait_for_health(f"http://127.0.0.1:{api_port}", processes[2])
            yield Stack(f"http://127.0.0.1:{api_port}", token, plugin, processes)
        finally:
            for process in processes:
                process.stop()


def approval_workflow(recipient_id: str) -> str:
    return f"""
id: tg-gate
name: approve from Telegram
triggers:
  - type: webhook
steps:
  - id: ask
    type: approval
    message: "Restart db-1?"
    notify: ["telegram:ops"]
    approvers: ["recipient:{recipient_id}"]
"""


def test_telegram_approval_via_callback_resumes_an_execution(stack):
    fake, webhook = stack.plugin.fake, f"{stack.plugin.url}/telegram/webhook"
    created = stack.call("POST", "/api/recipients", json={"name": "Ada", "telegram_id": "777"})
    assert created.status_code == 201, created.text
    uploaded = stack.call(
        "PUT",
        "/api/workflows/tg-gate",
        data=approval_workflow(created.json()["id"]),
        headers={"Content-Type": "application/yaml"},
    )
    assert uploaded.status_code == 200, uploaded.text
    execution_id = requests.post(f"{stack.api}/api/hooks/tg-gate", json={}, timeout=30).json()[
        "execution_id"
    ]
    stack.wait_for(execution_id, ("waiting_approval",))
    (sent,) = fake.wait_for("sendMessage")
    assert sent["chat_id"] == -1001234567890 and "Restart db-1?" in sent["text"]
    approve, _ = sent["reply_markup"]["inline_keyboard"][0]

    # Someone who is not an approver presses Approve: refused, nothing changes.
    refused = fake.press(webhook, SECRET, 42, approve["callback_data"], STRANGER)
    (refusal,) = fake.wait_for("answerCallbackQuery")
    still = stack.call("GET", f"/api/executions/{execution_id}").json()

    assert refused.status_code == 200
    assert refusal["text"].startswith("Not allowed") and refusal["show_alert"] is True
    assert still["status"] == "waiting_approval"
    assert fake.called("editMessageText") == []

    # The approver presses Approve: the execution continues and the message shows who decided.
    pressed = fake.press(webhook, SECRET, 42, approve["callback_data"], APPROVER)
    view = stack.wait_for(execution_id, ("succeeded", "failed", "rejected"))

    assert pressed.status_code == 200
    assert view["status"] == "succeeded"
    decision = view["approvals"][0]["decisions"][0]
    assert decision["actor"] == "telegram:777" and decision["channel"] == "telegram"
    assert fake.called("answerCallbackQuery")[1]["text"] == "Approved"
    (edited,) = fake.called("editMessageText")
    assert edited["chat_id"] == -1001234567890 and edited["message_id"] == 42
    assert "Restart db-1?" in edited["text"]
    assert "Approved by Ada (@ada, id 777) at " in edited["text"]
    assert edited["reply_markup"] == {"inline_keyboard": []}
    assert "reply_markup" not in fake.messages[42]

    # A late press after the decision is answered with Core's 409 message.
    fake.press(webhook, SECRET, 42, approve["callback_data"], APPROVER)
    assert "already resolved" in fake.wait_for("answerCallbackQuery", 3)[2]["text"]
    assert fake.called("editMessageReplyMarkup") == []  # no buttons left to remove
