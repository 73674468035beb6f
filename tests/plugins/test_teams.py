"""The Teams plugin as a real process posting MessageCards to a fake incoming webhook."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from plugins.teams.cards import message_card
from plugins.teams.config import TeamsConfig, load_config
from shared.errors import SettingsError
from shared.plugin_token import load_plugin_token
from tests.support.fake_teams import FakeTeams
from tests.support.processes import Process

HOOK = "/webhookb2/abc@def/IncomingWebhook/123/456"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Plugin:
    url: str
    token: str
    fake: FakeTeams
    process: Process

    def send(self, **body: Any) -> dict[str, Any]:
        body.setdefault("title", "Disk almost full")
        body.setdefault("message", "db-1: / is 93% full")
        body.setdefault("severity", "critical")
        response = requests.post(
            f"{self.url}/send",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def plugin(make_settings, monkeypatch, tmp_path) -> Iterator[Plugin]:
    with FakeTeams() as fake:
        monkeypatch.setenv("AISOPSFLOW_TEAMS_BASE_URL", f"{fake.url}/webhookb2/")
        settings = make_settings()
        token = load_plugin_token(settings)
        port = free_port()
        process = Process(settings, ["plugin", "teams", "--port", str(port)], tmp_path / "t.log")
        process.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                auth = {"Authorization": f"Bearer {token}"}
                if requests.post(f"{url}/probe", headers=auth, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, process.output()[-4000:]
            time.sleep(0.1)
        yield Plugin(url, token, fake, process)
        process.stop()


@pytest.mark.parametrize(
    ("base", "target", "url"),
    [
        ("", "https://x.webhook.office.com/webhookb2/a", "https://x.webhook.office.com/webhookb2/a"),
        ("https://x.example/webhookb2", "abc/IncomingWebhook/1", "https://x.example/webhookb2/abc/IncomingWebhook/1"),
        ("https://x.example/webhookb2", "/abc", "https://x.example/webhookb2/abc"),
    ],
)  # fmt: skip
def test_webhook_url_of_a_target(base, target, url):
    assert TeamsConfig(base_url=base).webhook_url(target) == url


def test_a_suffix_without_a_base_url_names_the_setting():
    with pytest.raises(ValueError, match="AISOPSFLOW_TEAMS_BASE_URL is not set"):
        TeamsConfig().webhook_url("abc/def")


def test_a_bad_base_url_is_refused_at_start():
    with pytest.raises(SettingsError, match="AISOPSFLOW_TEAMS_BASE_URL"):
        load_config({"AISOPSFLOW_TEAMS_BASE_URL": "teams.example"})


@pytest.mark.parametrize(("severity", "color"), [("info", "0078D7"), ("critical", "D13438")])
def test_message_card_colour_follows_severity(severity, color):
    assert message_card("t", "m", severity)["themeColor"] == color


def test_full_url_target_gets_a_message_card(plugin):
    answer = plugin.send(target=f"{plugin.fake.url}{HOOK}")

    assert answer == {"ok": True, "message_id": None, "error": None, "retryable": False}
    ((path, card),) = plugin.fake.posts
    assert path == HOOK
    assert card["@type"] == "MessageCard" and card["@context"] == "https://schema.org/extensions"
    assert card["title"] == "Disk almost full" and card["text"] == "db-1: / is 93% full"
    assert card["themeColor"] == "D13438"
    assert "potentialAction" not in card


def test_suffix_target_is_joined_to_the_base_url(plugin):
    assert plugin.send(target="abc@def/IncomingWebhook/123/456")["ok"] is True

    assert plugin.fake.posts[0][0] == HOOK


def test_approval_links_become_openuri_actions(plugin):
    approval = {
        "approval_id": "ap_1",
        "execution_id": "ex_1",
        "step_id": "ask",
        "approve_url": "http://core/api/approval-links/yes",
        "reject_url": "http://core/api/approval-links/no",
    }

    plugin.send(target="hook", approval=approval)

    card = plugin.fake.posts[0][1]
    assert card["potentialAction"] == [
        {"@type": "OpenUri", "name": "Approve", "targets": [{"os": "default", "uri": approval["approve_url"]}]},
        {"@type": "OpenUri", "name": "Reject", "targets": [{"os": "default", "uri": approval["reject_url"]}]},
    ]  # fmt: skip
    facts = card["sections"][0]["facts"]
    assert {"name": "Step", "value": "ask"} in facts
    assert {"name": "Execution", "value": "ex_1"} in facts


@pytest.mark.parametrize(
    ("status", "text", "retryable"),
    [
        (500, "", True),
        (429, "", True),
        (400, "Bad payload received by generic incoming webhook.", False),
        (200, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429", True),
    ],
)  # fmt: skip
def test_failures_are_classified(plugin, status, text, retryable):
    plugin.fake.fail(status, text)

    answer = plugin.send(target="hook")

    assert answer["ok"] is False and answer["retryable"] is retryable
    assert "webhookb2" not in answer["error"]  # the URL is the webhook's secret


def test_unreachable_webhook_is_retryable(plugin):
    answer = plugin.send(target=f"http://127.0.0.1:{free_port()}/hook")

    assert answer["ok"] is False and answer["retryable"] is True


def test_a_body_without_target_is_400(plugin):
    response = requests.post(
        f"{plugin.url}/send",
        json={"message": "m"},
        headers={"Authorization": f"Bearer {plugin.token}"},
        timeout=10,
    )

    assert response.status_code == 400 and response.json()["code"] == "bad_request"
