"""Approval steps: approve, reject, double resolve, timeout, roles, quorum, resolved at source."""

from __future__ import annotations

import pytest


def gate_workflow(loopback_url: str, *, extra: str = "", resolve_when: str = "") -> str:
    return f"""
id: gate
name: approval then http
triggers:
  - type: webhook
    dedupe_key: "{{{{ body.groupKey }}}}"
    {resolve_when}
steps:
  - id: ask
    type: approval
    {extra}
  - id: act
    type: http
    method: POST
    url: {loopback_url}/act
"""


def resolve(engine, execution_id, decision, token=None, **body):
    return engine.client.post(
        f"/api/approvals/{execution_id}/ask/resolve",
        json={"decision": decision, **body},
        headers=engine.headers(token),
    )


@pytest.fixture
def waiting(engine, loopback):
    """Upload the gate workflow (with ``extra`` approval fields) and start one execution waiting on it."""

    def start(extra: str = "", group_key: str = "g1") -> str:
        engine.put_workflow("gate", gate_workflow(loopback.url, extra=extra))
        execution_id = engine.hook("gate", {"groupKey": group_key}).json["execution_id"]
        engine.wait_for(execution_id, ("waiting_approval",))
        return execution_id

    return start


def test_approve_continues_the_execution(engine, loopback, waiting):
    execution_id = waiting()

    listed = engine.client.get("/api/approvals?status=pending", headers=engine.headers()).json
    response = resolve(engine, execution_id, "approve", comment="go")
    view = engine.wait_for(execution_id)

    assert [item["execution_id"] for item in listed] == [execution_id]
    assert response.status_code == 200 and response.json["status"] == "approved"
    assert view["status"] == "succeeded" and loopback.count("/act") == 1
    decision = view["approvals"][0]["decisions"][0]
    assert (
        decision["actor"] == "admin@example.test"
        and decision["comment"] == "go"
        and decision["channel"] == "api"
    )


def test_reject_ends_the_execution_as_rejected(engine, loopback, waiting):
    execution_id = waiting()

    resolve(engine, execution_id, "reject", comment="not now")
    view = engine.wait_for(execution_id)

    assert view["status"] == "rejected" and loopback.count("/act") == 0


def test_a_second_resolve_is_409_naming_the_first_decision(engine, waiting):
    execution_id = waiting()
    resolve(engine, execution_id, "reject")

    second = resolve(engine, execution_id, "approve")

    assert second.status_code == 409
    assert "rejected" in second.json["message"] and "admin@example.test" in second.json["message"]


@pytest.mark.parametrize(
    ("role", "status"), [("viewer", 403), ("operator", 403), ("approver", 200)]
)
def test_who_may_resolve(engine, waiting, role, status):
    execution_id = waiting()

    response = resolve(engine, execution_id, "approve", token=engine.user_token(role))

    assert response.status_code == status


def test_a_timed_out_approval_fails_the_execution(engine, loopback, waiting):
    execution_id = waiting("timeout_seconds: 1")

    view = engine.wait_for(execution_id, timeout=15)

    assert view["status"] == "timed_out"
    assert engine.step(view, "ask")["status"] == "timed_out" and loopback.count("/act") == 0


def test_on_timeout_approve_continues(engine, loopback, waiting):
    execution_id = waiting("timeout_seconds: 1\n    on_timeout: approve")

    view = engine.wait_for(execution_id, timeout=15)

    assert view["status"] == "succeeded" and loopback.count("/act") == 1


def test_a_quorum_of_two_needs_two_distinct_approvers(engine, loopback, waiting):
    execution_id = waiting("required_approvals: 2")
    first = engine.user_token("approver")

    once = resolve(engine, execution_id, "approve", token=first)
    twice = resolve(engine, execution_id, "approve", token=first)
    still = engine.execution(execution_id)["status"]
    other = resolve(engine, execution_id, "approve", token=engine.user_token("approver"))
    view = engine.wait_for(execution_id)

    assert once.status_code == twice.status_code == 200
    assert once.json["status"] == twice.json["status"] == "pending"
    assert len(twice.json["decisions"]) == 1
    assert still == "waiting_approval"
    assert other.json["status"] == "approved" and view["status"] == "succeeded"


def test_a_plugin_resolves_for_a_mapped_recipient_only(engine, waiting):
    from shared.plugin_token import load_plugin_token

    recipient = engine.client.post(
        "/api/recipients", json={"name": "Kim", "slack_id": "U123"}, headers=engine.headers()
    ).json
    execution_id = waiting(f"approvers: ['recipient:{recipient['id']}']")
    plugin = {"Authorization": f"Bearer {load_plugin_token(engine.settings)}"}

    stranger = engine.client.post(
        f"/api/approvals/{execution_id}/ask/resolve",
        json={"decision": "approve", "actor": "U999", "channel": "slack"},
        headers=plugin,
    )
    mapped = engine.client.post(
        f"/api/approvals/{execution_id}/ask/resolve",
        json={"decision": "approve", "actor": "U123", "channel": "slack"},
        headers=plugin,
    )

    assert stranger.status_code == 403
    assert mapped.status_code == 200 and mapped.json["decisions"][0]["actor"] == "slack:U123"


def test_alertmanager_resolved_cancels_the_execution_waiting_for_approval(engine, loopback):
    engine.put_workflow(
        "gate", gate_workflow(loopback.url, resolve_when="resolve_when: body.status == 'resolved'")
    )
    firing = engine.hook(
        "gate", {"groupKey": '{}:{alertname="DiskFull"}', "status": "firing"}
    ).json["execution_id"]
    engine.wait_for(firing, ("waiting_approval",))

    resolved = engine.hook("gate", {"groupKey": '{}:{alertname="DiskFull"}', "status": "resolved"})
    view = engine.execution(firing)

    assert resolved.status_code == 200
    assert resolved.json["execution_id"] == firing and resolved.json["resolved"] is True
    assert view["status"] == "cancelled" and "resolved at source" in view["error_summary"]
    assert loopback.count("/act") == 0
