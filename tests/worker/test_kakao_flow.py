"""Kakao end to end with real processes: API, worker, scheduler, the mock provider, Slack and email.

The mock provider (``aisopsflow plugin kakao-mock``) answers sends and posts delivery
events to the API process over HTTP; the Slack plugin talks to a fake Slack Web API
and the email plugin to an aiosmtpd server, so a fallback is seen where people would.
"""

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

from shared.db import connection
from shared.models import User
from shared.plugin_token import load_plugin_token
from shared.sessions import open_session
from tests.support.engine_fixtures import Engine
from tests.support.fake_slack import FakeSlack
from tests.support.processes import Process
from tests.support.smtp_server import SmtpServer

BOT_TOKEN = "xoxb-kakao-test"
#: How long a process may take to answer its first request, in seconds.
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """The first truthy value of ``condition()``, polled until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)
    return value


def answers(
    url: str, process: Process, headers: dict[str, str] | None = None
) -> Callable[[], bool]:
    """Whether ``url`` answers 200 (POST with ``headers``, else GET); fails if the process died."""

    def check() -> bool:
        assert process.process.poll() is None, process.output()
        try:
            if headers is None:
                return requests.get(url, timeout=1).status_code == 200
            return requests.post(url, headers=headers, timeout=1).status_code == 200
        except requests.RequestException:  # refused, or too slow while starting
            return False

    return check


@dataclass
class KakaoStack:
    """The engine (in-process API client for setup) plus the real API and plugin processes."""

    engine: Engine
    api_url: str
    mock_url: str
    plugin_headers: dict[str, str]
    slack: FakeSlack
    smtp: SmtpServer

    def configure_mock(self, **changes: Any) -> None:
        response = requests.post(
            f"{self.mock_url}/mock/config", json=changes, headers=self.plugin_headers, timeout=5
        )
        assert response.status_code == 200, response.text

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call to the API process, as the admin."""
        return requests.request(
            method, self.api_url + path, headers=self.engine.headers(), timeout=30, **kwargs
        )


@pytest.fixture
def stack(
    make_settings: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KakaoStack]:
    from api.app import create_app
    from shared.bootstrap import prepare
    from shared.kakao.providers import register_bundled_mock
    from shared.tenancy import tenant_by_slug

    ports = {name: free_port() for name in ("api", "slack", "email", "kakao-mock")}
    with FakeSlack(bot_token=BOT_TOKEN) as slack:
        smtp = SmtpServer().start()
        # The channel plugins read these from the environment they inherit.
        monkeypatch.setenv("AISOPSFLOW_SLACK_API_URL", slack.api_url)
        monkeypatch.setenv("AISOPSFLOW_SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("AISOPSFLOW_SLACK_SIGNING_SECRET", "kakao-test-signing-secret")
        monkeypatch.setenv("AISOPSFLOW_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("AISOPSFLOW_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("AISOPSFLOW_SMTP_FROM", "AisOpsFlow <alerts@example.com>")
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path / 'engine.db'}",
            redis_namespace=f"t-{uuid.uuid4().hex[:12]}",
            worker_processes="1",
            worker_threads="4",
            api_host="127.0.0.1",
            api_port=str(ports["api"]),
            api_workers="1",
            core_url=f"http://127.0.0.1:{ports['api']}",
            plugin_urls=",".join(f"{name}=http://127.0.0.1:{ports[name]}" for name in ports),
            kakao_mock_delivery_delay_ms="100",
        )
        prepare(settings)
        # What `aisopsflow up` does: the bundled mock becomes provider `mock`.
        assert register_bundled_mock(settings) is True
        assert register_bundled_mock(settings) is False
        app = create_app(settings)
        with connection():
            tenant = tenant_by_slug(settings.default_tenant_slug)
            admin = User.create(
                tenant=tenant, email="admin@example.test", password_hash="x", role="admin"
            )
            token = open_session(settings, admin)[0]
        plugin_headers = {"Authorization": f"Bearer {load_plugin_token(settings)}"}
        processes = {
            "api": Process(settings, ["api"], tmp_path / "api.log"),
            "worker": Process(settings, ["worker"], tmp_path / "worker.log"),
            "scheduler": Process(settings, ["scheduler"], tmp_path / "scheduler.log"),
        }
        for name in ("slack", "email", "kakao-mock"):
            command = ["plugin", name, "--host", "127.0.0.1", "--port", str(ports[name])]
            processes[name] = Process(settings, command, tmp_path / f"{name}.log")
        for process in processes.values():
            process.start()
        try:
            for name in ("slack", "email", "kakao-mock"):
                probe = f"http://127.0.0.1:{ports[name]}/probe"
                wait_for(answers(probe, processes[name], plugin_headers), START_TIMEOUT_SECONDS)
            api_url = f"http://127.0.0.1:{ports['api']}"
            wait_for(answers(f"{api_url}/healthz", processes["api"]), START_TIMEOUT_SECONDS)
            engine = Engine(
                app.test_client(),
                settings,
                token,
                tenant.id,
                processes["worker"],
                processes["scheduler"],
                tmp_path,
            )
            yield KakaoStack(
                engine,
                api_url,
                f"http://127.0.0.1:{ports['kakao-mock']}",
                plugin_headers,
                slack,
                smtp,
            )
        finally:
            for process in processes.values():
                process.stop()
            smtp.stop()


def register_template(stack: KakaoStack) -> None:
    response = stack.api(
        "POST",
        "/api/kakao/templates",
        json={
            "provider_id": "mock",
            "template_id": "ops_alert_v1",
            "required_vars": ["system", "host"],
        },
    )
    assert response.status_code == 201, response.text


def add_recipient(stack: KakaoStack, **fields: Any) -> str:
    response = stack.api("POST", "/api/recipients", json=fields)
    assert response.status_code == 201, response.text
    return response.json()["id"]


PAGE = """
id: kakao-page
name: page by Kakao AlimTalk
triggers: [{type: webhook}]
steps:
  - id: page
    type: notify
    severity: critical
    message: "{{ body.host }} is down"
    targets:
      - kakao:
          provider: mock
          template_id: ops_alert_v1
          to: ["010-1234-5678", "group:oncall"]
          vars:
            system: prod
            host: "{{ body.host }}"
          fallback:
            - slack.ops-alerts
            - email:oncall@example.com
"""


def test_provider_down_sends_the_fallback_to_slack_and_email(stack):
    register_template(stack)
    kim = add_recipient(stack, name="Kim", phone="010-2222-3333")
    stack.api("POST", "/api/groups", json={"name": "oncall", "members": [kim]})
    stack.configure_mock(down=True)
    engine = stack.engine
    engine.put_workflow("kakao-page", PAGE)

    execution_id = engine.hook("kakao-page", {"host": "db-1"}).json["execution_id"]
    view = engine.wait_for(execution_id)

    assert view["status"] == "succeeded", view
    step = engine.step(view, "page")
    [kakao] = step["output"]["output"]["results"]
    assert kakao["ok"] is True and kakao["delivered_by"] == "fallback"
    assert "Kakao provider 'mock' answered HTTP 503" in kakao["error"]
    assert kakao["to"] == ["01012345678", "01022223333"]
    assert kakao["provider_message_id"] is None and kakao["accepted"] == 0
    fallback = {item["channel"]: item for item in kakao["fallback"]["results"]}
    assert fallback["slack"]["ok"] is True and fallback["email"]["ok"] is True
    [posted] = stack.slack.calls("chat.postMessage")
    assert posted.args["channel"] == "ops-alerts"
    assert "ops_alert_v1" in str(posted.args) and "db-1" in str(posted.args)
    [mail] = wait_for(lambda: stack.smtp.received, what="the fallback email")
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert "[Kakao fallback] ops_alert_v1" in mail.message["Subject"]
    assert "host: db-1" in mail.message.get_body(("plain",)).get_content()
    messages = step["kakao_messages"]
    assert sorted(item["to"] for item in messages) == ["01012345678", "01022223333"]
    assert {(item["status"], item["fallback_status"]) for item in messages} == {("failed", "sent")}


EVENTS = """
id: kakao-events
name: fallback after a failed delivery
triggers: [{type: webhook}]
steps:
  - id: page
    type: notify
    message: "disk full"
    targets:
      - kakao:
          provider: mock
          template_id: ops_alert_v1
          to: ["010-1111-0001", "010-1111-0002"]
          vars: {system: prod, host: db-1}
          fallback: [slack.asks-for-it]
          fallback_on: [send_error, delivery_failed]
      - kakao:
          provider: mock
          template_id: ops_alert_v1
          to: ["010-2222-0001"]
          vars: {system: prod, host: db-2}
          fallback: [slack.send-errors-only]
"""


def test_a_failed_delivery_event_sends_the_fallback_only_when_fallback_on_asks(stack):
    register_template(stack)
    # Numbers ending in 0001 are accepted at send, then reported undeliverable.
    stack.configure_mock(delivery_fail_pattern="0001$")
    engine = stack.engine
    engine.put_workflow("kakao-events", EVENTS)

    execution_id = engine.hook("kakao-events", {}).json["execution_id"]
    view = engine.wait_for(execution_id)

    assert view["status"] == "succeeded", view
    results = engine.step(view, "page")["output"]["output"]["results"]
    assert [result["delivered_by"] for result in results] == ["kakao", "kakao"]
    assert all(result["provider_message_id"].startswith("mock-") for result in results)

    def settled() -> dict[str, dict[str, Any]] | None:
        messages = engine.step(engine.execution(execution_id), "page")["kakao_messages"]
        by_phone = {item["to"]: item for item in messages}
        done = all(item["events"] for item in messages) and (
            by_phone["01011110001"]["fallback_status"] in ("sent", "failed")
        )
        return by_phone if done else None

    by_phone = wait_for(settled, what="delivery events and the fallback")
    asked, delivered, not_asked = (
        by_phone["01011110001"],
        by_phone["01011110002"],
        by_phone["01022220001"],
    )
    assert asked["status"] == "delivery_failed" and asked["fallback_status"] == "sent"
    assert asked["fallback"]["results"][0]["target"] == "slack.asks-for-it"
    assert delivered["status"] == "delivered" and delivered["fallback_status"] is None
    assert delivered["events"][0]["status"] == "delivered"
    assert not_asked["status"] == "delivery_failed" and not_asked["fallback_status"] is None
    time.sleep(0.5)  # a wrongly queued fallback would have reached Slack by now
    channels = [call.args["channel"] for call in stack.slack.calls("chat.postMessage")]
    assert channels == ["asks-for-it"]
    assert "delivery to 01011110001 failed" in str(stack.slack.calls("chat.postMessage")[0].args)


def test_send_test_through_the_real_mock_and_its_delivery_events(stack):
    register_template(stack)
    kim = add_recipient(stack, name="Kim", phone="010-3333-4444")
    lee = add_recipient(stack, name="Lee", email="lee@example.com")
    stack.api("POST", "/api/groups", json={"name": "oncall", "members": [kim, lee]})

    response = stack.api(
        "POST",
        "/api/kakao/send-test",
        json={
            "provider": "mock",
            "template_id": "ops_alert_v1",
            "to": ["group:oncall", "+82 10 5555 6666"],
            "vars": {"system": "prod", "host": "db-1"},
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["provider_message_id"].startswith("mock-")
    assert body["accepted"] == 2 and body["to"] == ["01033334444", "01055556666"]
    assert body["missing_phones"] == [{"recipient_id": lee, "name": "Lee", "reason": "no phone"}]

    def delivered() -> list[dict[str, Any]] | None:
        messages = stack.api(
            "GET", f"/api/kakao/messages?provider_message_id={body['provider_message_id']}"
        ).json()
        return messages if all(item["status"] == "delivered" for item in messages) else None

    messages = wait_for(delivered, what="the delivery events")
    assert sorted(item["to"] for item in messages) == body["to"]
    assert all(len(item["events"]) == 1 for item in messages)
