"""The notify step's kakao target through the real worker: checks before sending, retries, fallback.

A loopback server is the provider (a tenant's bearer provider) and the channel plugins;
tests/worker/test_kakao_flow.py runs the real mock provider and channel plugins.
"""

from __future__ import annotations

import json

import pytest

from tests.support.loopback import Loopback

SEND = "/provider/kakao/alimtalk/send"
PROVIDER_TOKEN = "relay-credential-1"


@pytest.fixture(scope="module")
def loopback_plugins():
    with Loopback() as server:
        yield server


@pytest.fixture
def plugins(loopback_plugins):
    """Fresh routes per test: the provider accepts everything, Slack delivers."""
    loopback_plugins.hits.clear()
    loopback_plugins.route(
        SEND,
        body={"ok": True, "provider_message_id": "relay-1", "result": {"accepted": 1, "failed": 0}},
    )
    loopback_plugins.route("/slack/send", body={"ok": True, "message_id": "s-1"})
    return loopback_plugins


@pytest.fixture
def engine_overrides(loopback_plugins):
    return {"plugin_urls": f"slack={loopback_plugins.url}/slack"}


@pytest.fixture
def relay(engine, plugins):
    """Provider `relay` of the tenant with its credential, and template `ops_alert_v1`."""
    for path, body in (
        (
            "/api/kakao/providers",
            {
                "id": "relay",
                "base_url": f"{plugins.url}/provider",
                "credentials": {"token": PROVIDER_TOKEN},
            },
        ),
        (
            "/api/kakao/templates",
            {"provider_id": "relay", "template_id": "ops_alert_v1", "required_vars": ["host"]},
        ),
    ):
        response = engine.client.post(path, json=body, headers=engine.headers())
        assert response.status_code == 201, response.json
    return plugins


def workflow(target: str, extra_targets: str = "", retry: str = "") -> str:
    return f"""
id: page
name: page
triggers: [{{type: webhook}}]
steps:
  - id: tell
    type: notify
    message: "{{{{ body.host }}}} is down"
{retry}    targets:
      - kakao:
{target}
{extra_targets}"""


KAKAO = """          provider: relay
          template_id: ops_alert_v1
          to: ["01012345678"]
          fallback: [slack.ops]"""


def run(engine, yaml_text: str, body: dict | None = None) -> dict:
    engine.put_workflow("page", yaml_text)
    return engine.wait_for(engine.hook("page", body or {"host": "db-1"}).json["execution_id"])


def test_a_missing_var_fails_the_step_at_once_naming_it(engine, relay):
    retry = "    retry: {max: 3, backoff_ms: 100, retry_on: [connection, timeout, 5xx]}\n"
    text = workflow(KAKAO + '\n          vars: {system: "{{ body.system }}"}', retry=retry)

    view = run(engine, text, {"host": "db-1", "system": "prod"})

    assert view["status"] == "failed"
    step = engine.step(view, "tell")
    assert step["attempt"] == 1
    assert "needs vars that are missing: host" in step["error"]
    assert step["output"]["output"]["results"][0]["missing_vars"] == ["host"]
    assert relay.count(SEND) == 0 and relay.count("/slack/send") == 0


def test_vars_are_rendered_and_sent_with_the_provider_credential(engine, relay):
    view = run(engine, workflow(KAKAO + '\n          vars: {host: "{{ body.host }}"}'))

    assert view["status"] == "succeeded", view["error_summary"]
    [hit] = relay.hits[SEND]
    sent = json.loads(hit["body"])
    assert hit["headers"]["Authorization"] == f"Bearer {PROVIDER_TOKEN}"
    assert sent["vars"] == {"host": "db-1"} and sent["to"] == ["01012345678"]
    step = engine.step(view, "tell")
    assert sent["trace_id"].endswith(":0")
    [message] = step["kakao_messages"]
    assert message["provider_message_id"] == "relay-1" and message["status"] == "accepted"
    assert relay.count("/slack/send") == 0


def test_a_retry_does_not_send_an_accepted_alimtalk_again(engine, relay):
    relay.route("/slack/send", statuses=[503, 200], body={"ok": True, "message_id": "s-1"})
    retry = "    retry: {max: 2, backoff_ms: 100}\n"
    text = workflow(KAKAO + "\n          vars: {host: db-1}", "      - slack.ops", retry)

    view = run(engine, text)

    assert view["status"] == "succeeded", view["error_summary"]
    assert engine.step(view, "tell")["attempt"] == 2
    assert relay.count(SEND) == 1
    kakao = engine.step(view, "tell")["output"]["output"]["results"][-1]
    assert kakao["ok"] is True and "earlier attempt" in kakao["note"]


def test_every_recipient_failing_is_a_provider_failure_and_falls_back(engine, relay):
    relay.route(
        SEND,
        body={
            "ok": True,
            "provider_message_id": "relay-2",
            "result": {"accepted": 0, "failed": 1},
            "recipients": [{"to": "01012345678", "status": "failed", "reason": "not a Kakao user"}],
        },
    )

    view = run(engine, workflow(KAKAO + "\n          vars: {host: db-1}"))

    assert view["status"] == "succeeded", view["error_summary"]
    [kakao] = engine.step(view, "tell")["output"]["output"]["results"]
    assert kakao["delivered_by"] == "fallback"
    assert kakao["error"] == "every recipient failed: not a Kakao user"
    [note] = [json.loads(hit["body"]) for hit in relay.hits["/slack/send"]]
    assert note["target"] == "ops" and "not a Kakao user" in note["message"]


def test_no_fallback_and_a_failed_step_when_fallback_on_leaves_send_error_out(engine, relay):
    relay.route(SEND, statuses=[503], body={"message": "down"})
    target = KAKAO + "\n          vars: {host: db-1}\n          fallback_on: [delivery_failed]"

    view = run(engine, workflow(target))

    assert view["status"] == "failed"
    assert "Kakao provider 'relay' answered HTTP 503" in engine.step(view, "tell")["error"]
    assert relay.count("/slack/send") == 0


def test_an_inactive_provider_fails_the_step_without_sending(engine, relay):
    engine.client.patch(
        "/api/kakao/providers/relay", json={"active": False}, headers=engine.headers()
    )

    view = run(engine, workflow(KAKAO + "\n          vars: {host: db-1}"))

    assert view["status"] == "failed"
    assert "Kakao provider 'relay' is inactive" in engine.step(view, "tell")["error"]
    assert relay.count(SEND) == 0
