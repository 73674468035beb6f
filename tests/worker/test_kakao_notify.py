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


DOWN = "Kakao provider 'relay' answered HTTP 503"


def fallback_notes(relay) -> list[dict]:
    bodies = [json.loads(hit["body"]) for hit in relay.hits["/slack/send"]]
    return [body for body in bodies if body["title"].startswith("[Kakao fallback]")]


def test_a_failed_fallback_is_sent_again_by_the_step_retry_and_the_alimtalk_is_not(engine, relay):
    relay.route(SEND, statuses=[503], body={"message": "down"})
    relay.route("/slack/send", statuses=[503, 200], body={"ok": True, "message_id": "s-1"})
    retry = "    retry: {max: 2, backoff_ms: 100}\n"

    view = run(engine, workflow(KAKAO + "\n          vars: {host: db-1}", retry=retry))

    assert view["status"] == "succeeded", view["error_summary"]
    step = engine.step(view, "tell")
    assert step["attempt"] == 2
    [kakao] = step["output"]["output"]["results"]
    assert kakao["delivered_by"] == "fallback" and DOWN in kakao["error"]
    assert kakao["fallback"]["delivered"] == 1
    assert relay.count(SEND) == 1 and relay.count("/slack/send") == 2
    [message] = step["kakao_messages"]
    assert message["fallback_status"] == "sent"


def test_a_step_retry_after_the_fallback_was_sent_does_not_send_it_again(engine, relay):
    relay.route(SEND, statuses=[503], body={"message": "down"})
    # Attempt 1: slack.ops itself fails, the fallback is sent; attempt 2: slack.ops works.
    relay.route("/slack/send", statuses=[503, 200], body={"ok": True, "message_id": "s-1"})
    retry = "    retry: {max: 2, backoff_ms: 100}\n"
    text = workflow(KAKAO + "\n          vars: {host: db-1}", "      - slack.ops", retry)

    view = run(engine, text)

    assert view["status"] == "succeeded", view["error_summary"]
    step = engine.step(view, "tell")
    assert step["attempt"] == 2
    kakao = step["output"]["output"]["results"][-1]
    assert kakao["delivered_by"] == "fallback" and "earlier attempt" in kakao["note"]
    assert kakao["fallback"]["delivered"] == 1
    assert relay.count(SEND) == 1 and len(fallback_notes(relay)) == 1
    assert relay.count("/slack/send") == 3


TRACE = "tr-crashed-step:0"
TARGET = {
    "kakao": {
        "provider": "relay",
        "template_id": "ops_alert_v1",
        "to": ["01012345678"],
        "vars": {"host": "db-1"},
        "fallback": ["slack.ops"],
    }
}


def crashed_before_the_fallback(engine) -> list[str]:
    """What an attempt that died between storing the failed send and its fallback left."""
    from shared.domain.kakao import transport_failure
    from shared.kakao.messages import Fallback, Origin, record_send

    return record_send(
        engine.tenant_id,
        provider_key="relay",
        template_id="ops_alert_v1",
        result=transport_failure(DOWN, ["01012345678"], retryable=True),
        to=["01012345678"],
        trace_id=TRACE,
        origin=Origin(),
        fallback=Fallback(
            ("send_error",), ("slack.ops",), {"values": {"host": "db-1"}, "severity": "warning"}
        ),
    )


def retry_the_target(engine) -> dict:
    """What the step's next attempt does with the target: the same trace id."""
    from shared.kakao.notify import send_target
    from shared.notifications import deliver
    from shared.plugin_client import PluginClient

    plugins = PluginClient(engine.settings)
    return send_target(
        plugins,
        engine.tenant_id,
        TARGET,
        {"title": "db-1", "message": "db-1 is down", "severity": "warning"},
        render=lambda text: text,
        timeout_seconds=5,
        send_fallback=lambda targets, note: deliver(
            plugins, engine.tenant_id, targets, note, timeout_seconds=5
        ),
        trace_id=TRACE,
    )


def test_a_fallback_lost_in_a_crash_is_sent_once_by_the_step_retry(engine, relay):
    from shared.db import connection

    with connection():
        crashed_before_the_fallback(engine)
        first = retry_the_target(engine)
        second = retry_the_target(engine)

    assert relay.count(SEND) == 0
    [note] = fallback_notes(relay)
    assert note["target"] == "ops" and DOWN in note["message"] and "db-1" in note["message"]
    for outcome in (first, second):
        assert (outcome["ok"], outcome["delivered_by"]) == (True, "fallback")
        assert outcome["error"] == DOWN and outcome["fallback"]["delivered"] == 1


def test_a_lost_fallback_the_reconciler_sent_is_only_reported_by_the_step_retry(engine, relay):
    from shared.db import connection
    from shared.kakao.fallback import send_delivery_fallback
    from shared.plugin_client import PluginClient

    with connection():
        [message_id] = crashed_before_the_fallback(engine)
        sent = send_delivery_fallback(PluginClient(engine.settings), message_id)
        again = send_delivery_fallback(PluginClient(engine.settings), message_id)
        retried = retry_the_target(engine)

    assert sent is not None and sent.delivered == 1 and again is None
    assert len(fallback_notes(relay)) == 1 and relay.count(SEND) == 0
    assert (retried["ok"], retried["delivered_by"]) == (True, "fallback")
