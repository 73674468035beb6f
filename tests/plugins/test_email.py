"""The Email plugin as a real process against a real SMTP server (aiosmtpd) in the test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from plugins.email.config import load_email_config
from plugins.email.request import EmailRequest
from shared.errors import ChannelError, SettingsError
from tests.support.processes import Process
from tests.support.smtp_server import SmtpServer, free_port, make_certificate, server_tls_context

TOKEN = "email-plugin-test-token"
SENDER = "AisOpsFlow <alerts@example.com>"
PASSWORD = "s3cret-Pa55word"
#: How long the plugin process may take to answer its first probe, in seconds.
START_TIMEOUT_SECONDS = 30
ALERT = {
    "target": "ops@example.com",
    "title": "Disk almost full",
    "message": "db-1: / is 93% full\nclean up <tmp> & logs",
    "severity": "critical",
    "execution_id": "ex_1",
    "step_id": "notify",
}
APPROVAL = {
    "approval_id": "ap_1",
    "execution_id": "ex_1",
    "step_id": "ask",
    "approve_url": "http://core.test/api/approval-links/approve-token?x=1&y=2",
    "reject_url": "http://core.test/api/approval-links/reject-token",
}


class Plugin:
    """A running ``aisopsflow plugin email`` and how to call it."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def post(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            self.url + path,
            json=payload or {},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.process.poll() is not None:
                pytest.fail(f"the email plugin exited:\n{self.process.output()}")
            try:
                self.post("/probe")
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        pytest.fail(f"the email plugin did not answer /probe:\n{self.process.output()}")


@pytest.fixture
def start_plugin(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Plugin]]:
    """Start the plugin with ``AISOPSFLOW_SMTP_<KEY>=value`` for each keyword given."""
    started: list[Process] = []

    def start(**smtp: str) -> Plugin:
        for name in [name for name in os.environ if name.startswith("AISOPSFLOW_SMTP_")]:
            monkeypatch.delenv(name)
        for key, value in smtp.items():
            monkeypatch.setenv(f"AISOPSFLOW_SMTP_{key.upper()}", value)
        port = free_port()
        log = tmp_path / f"email-plugin-{len(started)}.log"
        command = ["plugin", "email", "--host", "127.0.0.1", "--port", str(port)]
        process = Process(make_settings(plugin_token=TOKEN), command, log).start()
        started.append(process)
        plugin = Plugin(process, port)
        plugin.wait_until_ready()
        return plugin

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_smtp(tmp_path: Path) -> Iterator[Callable[..., SmtpServer]]:
    """Start an aiosmtpd server; TLS modes get a throwaway self-signed certificate."""
    servers: list[SmtpServer] = []

    def start(mode: str = "plain", users: dict[str, str] | None = None) -> SmtpServer:
        context = server_tls_context(*make_certificate(tmp_path)) if mode != "plain" else None
        server = SmtpServer(mode=mode, tls_context=context, users=users).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def smtp_env(server: SmtpServer, **extra: str) -> dict[str, str]:
    return {"host": "127.0.0.1", "port": str(server.port), "from": SENDER, **extra}


def parts(message) -> dict[str, str]:
    """The text/plain and text/html bodies of a multipart/alternative message, with \\n lines."""
    assert message.get_content_type() == "multipart/alternative"
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in message.iter_parts()
    }


def test_plain_send_delivers_text_and_html(start_smtp, start_plugin):
    server = start_smtp()
    plugin = start_plugin(**smtp_env(server))

    answer = plugin.post("/send", ALERT)

    assert answer["ok"] is True and answer["error"] is None and answer["retryable"] is False
    [received] = server.received
    assert received.mail_from == "alerts@example.com"
    assert received.rcpt_tos == ["ops@example.com"]
    assert received.tls is False and received.authenticated_as is None
    message = received.message
    assert message["Message-ID"] == answer["message_id"]
    assert message["From"] == SENDER
    assert message["To"] == "ops@example.com"
    assert message["Subject"] == "[CRITICAL] Disk almost full"
    bodies = parts(message)
    assert "db-1: / is 93% full\nclean up <tmp> & logs" in bodies["text/plain"]
    assert "clean up &lt;tmp&gt; &amp; logs" in bodies["text/html"]
    assert "Approve" not in bodies["text/plain"] and "approval-links" not in bodies["text/html"]


def test_starttls_with_login(start_smtp, start_plugin):
    server = start_smtp("starttls", users={"mailer": PASSWORD})
    plugin = start_plugin(
        **smtp_env(
            server, mode="starttls", username="mailer", password=PASSWORD, verify_tls="false"
        )
    )

    answer = plugin.post("/send", ALERT)

    assert answer["ok"] is True, answer
    [received] = server.received
    assert received.authenticated_as == "mailer"
    assert received.tls is True


def test_a_wrong_password_is_permanent_and_never_shown(start_smtp, start_plugin):
    server = start_smtp("starttls", users={"mailer": "another-password"})
    plugin = start_plugin(
        **smtp_env(
            server, mode="starttls", username="mailer", password=PASSWORD, verify_tls="false"
        )
    )

    answer = plugin.post("/send", ALERT)

    assert answer["ok"] is False and answer["retryable"] is False
    assert "refused the login of 'mailer'" in answer["error"] and "535" in answer["error"]
    assert PASSWORD not in answer["error"]
    assert PASSWORD not in plugin.process.output()
    assert server.received == []


def test_ssl_mode(start_smtp, start_plugin):
    server = start_smtp("ssl")
    plugin = start_plugin(**smtp_env(server, mode="ssl", verify_tls="false"))

    answer = plugin.post("/send", ALERT)

    assert answer["ok"] is True, answer
    [received] = server.received
    assert received.tls is True
    assert received.message["Message-ID"] == answer["message_id"]


def test_an_unverifiable_certificate_is_refused(start_smtp, start_plugin):
    server = start_smtp("ssl")
    plugin = start_plugin(**smtp_env(server, mode="ssl"))

    answer = plugin.post("/send", ALERT)

    assert answer["ok"] is False and answer["retryable"] is False
    assert "AISOPSFLOW_SMTP_VERIFY_TLS" in answer["error"]
    assert server.received == []


@pytest.mark.parametrize(("code", "retryable"), [(451, True), (550, False)])
def test_a_refused_recipient(start_smtp, start_plugin, code, retryable):
    server = start_smtp()
    server.refuse("ops@example.com", code)
    plugin = start_plugin(**smtp_env(server))

    answer = plugin.post("/send", ALERT)

    assert answer == {
        "ok": False,
        "message_id": None,
        "error": answer["error"],
        "retryable": retryable,
    }
    assert f"127.0.0.1:{server.port}" in answer["error"]
    assert f"ops@example.com: {code} " in answer["error"]
    assert server.received == []


def test_server_down_is_retryable_and_named(start_plugin):
    port = free_port()
    plugin = start_plugin(host="127.0.0.1", port=str(port), **{"from": SENDER})

    answer = plugin.post("/send", ALERT)

    assert answer["ok"] is False and answer["retryable"] is True
    assert f"SMTP server 127.0.0.1:{port}" in answer["error"]


def test_approval_links_in_both_parts(start_smtp, start_plugin):
    server = start_smtp()
    plugin = start_plugin(**smtp_env(server))

    answer = plugin.post("/send", {**ALERT, "title": "Restart db-1?", "approval": APPROVAL})

    assert answer["ok"] is True, answer
    bodies = parts(server.received[0].message)
    text, html = bodies["text/plain"], bodies["text/html"]
    assert f"Approve: {APPROVAL['approve_url']}" in text
    assert f"Reject:  {APPROVAL['reject_url']}" in text
    assert '<a href="http://core.test/api/approval-links/approve-token?x=1&amp;y=2"' in html
    assert f'<a href="{APPROVAL["reject_url"]}"' in html
    assert ">Approve</a>" in html and ">Reject</a>" in html
    for body in (text, html):
        assert "works only once" in body and "expires" in body


def test_probe_names_missing_settings_and_send_refuses(start_plugin):
    plugin = start_plugin()

    probe = plugin.post("/probe")
    answer = plugin.post("/send", ALERT)

    assert probe["ok"] is True and probe["plugin"] == "email" and probe["config_ok"] is False
    assert "AISOPSFLOW_SMTP_HOST is not set" in probe["error"]
    assert "AISOPSFLOW_SMTP_FROM is not set" in probe["error"]
    assert answer["ok"] is False and answer["retryable"] is False
    assert "AISOPSFLOW_SMTP_HOST" in answer["error"]


def test_probe_is_ok_when_configured(start_smtp, start_plugin):
    plugin = start_plugin(**smtp_env(start_smtp()))

    probe = plugin.post("/probe")

    assert probe["config_ok"] is True and probe["error"] is None
    assert probe["capabilities"] == ["send", "approval"]


BASE = {"AISOPSFLOW_SMTP_HOST": "smtp.example.com", "AISOPSFLOW_SMTP_FROM": "a@example.com"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"port": 25, "mode": "plain", "timeout_ms": 10_000, "verify_tls": True}),
        ({"AISOPSFLOW_SMTP_MODE": "SSL"}, {"port": 465, "mode": "ssl"}),
        ({"AISOPSFLOW_SMTP_MODE": "starttls"}, {"port": 587}),
        ({"AISOPSFLOW_SMTP_MODE": "ssl", "AISOPSFLOW_SMTP_PORT": "2465"}, {"port": 2465}),
        ({"AISOPSFLOW_SMTP_TIMEOUT_SECONDS": "2.5"}, {"timeout_ms": 2500}),
        ({"AISOPSFLOW_SMTP_VERIFY_TLS": "false"}, {"verify_tls": False}),
    ],
)
def test_config_values(environ, expected):
    config = load_email_config({**BASE, **environ})

    assert {key: getattr(config, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({"AISOPSFLOW_SMTP_PORT": "abc"}, "AISOPSFLOW_SMTP_PORT='abc': expected a TCP port"),
        ({"AISOPSFLOW_SMTP_PORT": "70000"}, "AISOPSFLOW_SMTP_PORT='70000': expected a TCP port"),
        ({"AISOPSFLOW_SMTP_MODE": "tls"}, "AISOPSFLOW_SMTP_MODE='tls': expected one of plain,"),
        ({"AISOPSFLOW_SMTP_FROM": "nobody"}, "AISOPSFLOW_SMTP_FROM='nobody': expected an address"),
        ({"AISOPSFLOW_SMTP_TIMEOUT_SECONDS": "0"}, "AISOPSFLOW_SMTP_TIMEOUT_SECONDS='0'"),
        ({"AISOPSFLOW_SMTP_VERIFY_TLS": "maybe"}, "AISOPSFLOW_SMTP_VERIFY_TLS='maybe'"),
        ({"AISOPSFLOW_SMTP_USERNAME": "u"}, "AISOPSFLOW_SMTP_PASSWORD is not set but"),
        ({"AISOPSFLOW_SMTP_PASSWORD": PASSWORD}, "AISOPSFLOW_SMTP_USERNAME is not set but"),
    ],
)
def test_config_problems_are_one_line_each(environ, line):
    with pytest.raises(SettingsError) as raised:
        load_email_config({**BASE, **environ})

    assert [problem for problem in raised.value.errors if problem.startswith(line)]
    assert PASSWORD not in raised.value.message


def test_every_config_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        load_email_config({"AISOPSFLOW_SMTP_PORT": "x", "AISOPSFLOW_SMTP_MODE": "y"})

    assert len(raised.value.errors) == 4
    assert raised.value.message.count("\n") == 3


@pytest.mark.parametrize(
    ("payload", "subject"),
    [
        ({"title": "Disk full", "severity": "warning"}, "[WARNING] Disk full"),
        ({"title": "Disk\r\nfull  now"}, "Disk full now"),
        ({"message": "first line\nsecond", "severity": "info"}, "[INFO] first line"),
        ({"message": "m", "approval": APPROVAL}, "Approval requested"),
        ({"message": "m", "approval": {"approval_id": "ap_1"}}, "Approval requested"),
        ({"title": "x" * 300}, "x" * 199 + "…"),
    ],
)
def test_subject(payload, subject):
    assert EmailRequest.from_payload({"target": "a@example.com", **payload}).subject == subject


def test_an_approval_without_links_is_sent_without_buttons():
    request = EmailRequest.from_payload(
        {"target": "a@example.com", "message": "m", "approval": {"approval_id": "ap_1"}}
    )

    assert request.approval is None and request.asks_approval is True


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"target": "not-an-address", "message": "m"}, "is not an email address"),
        ({"target": "a@example.com\r\nBcc: x@example.com", "message": "m"}, "not an email"),
        ({"target": "a@example.com"}, "nothing to send"),
        ({"target": "a@example.com", "message": "m", "severity": "fatal"}, "severity 'fatal'"),
        ({"target": "a@example.com", "message": 5}, "'message' must be a string"),
        (
            {
                "target": "a@example.com",
                "message": "m",
                "approval": {**APPROVAL, "approve_url": "javascript:x"},
            },
            "approval.approve_url must be an http(s) URL",
        ),
        (
            {"target": "a@example.com", "message": "m", "approval": {"reject_url": "http://x/r"}},
            "approval.approve_url must be an http(s) URL, got None",
        ),
    ],
)
def test_malformed_requests_are_permanent(payload, error):
    with pytest.raises(ChannelError, match="^email: ") as raised:
        EmailRequest.from_payload(payload)

    assert error in raised.value.message and raised.value.retryable is False
