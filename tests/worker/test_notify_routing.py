"""Notify routing through the plugin contract: directory expansion, escalation, email approval links.

A loopback server stands in for the channel plugins here (each plugin's own tests run
the real plugin processes against fake upstreams); it answers the `POST /send` contract.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.loopback import Loopback

PLUGINS = ("slack", "email", "telegram", "teams")


@pytest.fixture(scope="module")
def plugins():
    """One loopback server answering `POST /<plugin>/send` for every channel plugin."""
    with Loopback() as server:
        for name in PLUGINS:
            server.route(
                f"/{name}/send",
                body={"ok": True, "message_id": f"{name}-1", "error": None, "retryable": False},
            )
        yield server


@pytest.fixture
def engine_overrides(plugins):
    return {"plugin_urls": ",".join(f"{name}={plugins.url}/{name}" for name in PLUGINS)}


def sent(plugins, name):
    return [json.loads(hit["body"]) for hit in plugins.hits[f"/{name}/send"]]


def add_recipient(engine, **fields):
    response = engine.client.post("/api/recipients", json=fields, headers=engine.headers())
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_a_group_reaches_every_member_on_their_channels_and_reports_the_unreachable(
    engine, plugins
):
    kim = add_recipient(engine, name="Kim", slack_id="U1", email="kim@example.com")
    lee = add_recipient(
        engine, name="Lee", telegram_id="55", teams_id="https://teams.example.com/hook/1"
    )
    park = add_recipient(engine, name="Park", phone="010-1234-5678")
    engine.client.post(
        "/api/groups",
        json={"name": "oncall", "members": [kim, lee, park]},
        headers=engine.headers(),
    )
    engine.put_workflow(
        "page",
        """
id: page
name: page the on-call group
triggers: [{type: webhook}]
steps:
  - id: tell
    type: notify
    targets: [group:oncall]
    title: "Disk on {{ body.host }}"
    message: "{{ body.host }} is 93% full"
    severity: critical
""",
    )

    view = engine.wait_for(engine.hook("page", {"host": "db-1"}).json["execution_id"])

    assert view["status"] == "succeeded", view["error_summary"]
    assert [message["target"] for message in sent(plugins, "slack")][-1] == "U1"
    assert sent(plugins, "email")[-1]["target"] == "kim@example.com"
    assert sent(plugins, "telegram")[-1]["target"] == "55"
    assert sent(plugins, "teams")[-1]["target"] == "https://teams.example.com/hook/1"
    assert (
        sent(plugins, "slack")[-1]["title"] == "Disk on db-1"
        and sent(plugins, "slack")[-1]["severity"] == "critical"
    )
    output = engine.step(view, "tell")["output"]["output"]
    assert output["delivered"] == 4
    assert output["missing_addresses"] == [
        {
            "recipient_id": park,
            "name": "Park",
            "reason": "no slack_id, email, telegram_id or teams_id",
        }
    ]


APPROVAL = """
id: gate
name: approval with escalation
triggers: [{{type: webhook}}]
steps:
  - id: ask
    type: approval
    notify: [email:kim@example.com]
    approvers: [recipient:{kim}]
    escalation:
      - after_seconds: 1
        notify: [slack.oncall-l2]
"""


def test_an_escalation_rung_fires_while_pending_and_email_links_decide(engine, plugins):
    kim = add_recipient(engine, name="Kim", email="kim@example.com")
    engine.put_workflow("gate", APPROVAL.format(kim=kim))
    execution_id = engine.hook("gate", {}).json["execution_id"]
    engine.wait_for(execution_id, ("waiting_approval",))

    deadline = time.monotonic() + 10
    while (
        not any(m.get("execution_id") == execution_id for m in sent(plugins, "slack"))
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    escalated = [m for m in sent(plugins, "slack") if m.get("execution_id") == execution_id]
    mail = [m for m in sent(plugins, "email") if m.get("execution_id") == execution_id][-1]

    assert len(escalated) == 1 and escalated[0]["target"] == "oncall-l2"
    assert escalated[0]["approval"]["step_id"] == "ask"
    assert engine.execution(execution_id)["approvals"][0]["escalations"][0]["rung"] == 0

    approve_path = mail["approval"]["approve_url"].split("://", 1)[1].split("/", 1)[1]
    page = engine.client.get("/" + approve_path)
    decided = engine.client.post("/" + approve_path)
    again = engine.client.post("/" + approve_path)
    view = engine.wait_for(execution_id)

    assert page.status_code == 200 and b"<form" in page.data
    assert decided.status_code == 200 and b"approved" in decided.data
    assert again.status_code == 409
    assert view["status"] == "succeeded"
    assert view["approvals"][0]["decisions"][0] == {
        **view["approvals"][0]["decisions"][0],
        "actor": "email:kim@example.com",
        "channel": "email",
    }
    tampered = engine.client.get("/" + approve_path[:-3] + "AAA")
    assert tampered.status_code == 404


def test_no_escalation_when_decided_in_time(engine, plugins):
    kim = add_recipient(engine, name="Kim", email="kim@example.com")
    engine.put_workflow(
        "gate", APPROVAL.format(kim=kim).replace("after_seconds: 1", "after_seconds: 3")
    )
    execution_id = engine.hook("gate", {}).json["execution_id"]
    engine.wait_for(execution_id, ("waiting_approval",))

    mail = [m for m in sent(plugins, "email") if m.get("execution_id") == execution_id][-1]
    reject_path = mail["approval"]["reject_url"].split("://", 1)[1].split("/", 1)[1]
    assert engine.client.post("/" + reject_path).status_code == 200
    time.sleep(4.5)

    assert not [m for m in sent(plugins, "slack") if m.get("execution_id") == execution_id]
    view = engine.execution(execution_id)
    assert view["status"] == "rejected" and view["approvals"][0]["escalations"] == []
