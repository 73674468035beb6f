"""Workflow upload, versions, enable/disable, delete, and executions pinned to their version."""

from __future__ import annotations

import pytest

from tests.support.steps import run_pending_steps

YAML = """
id: disk
name: Disk alert
triggers:
  - type: webhook
    dedupe_key: "{{ body.id }}"
steps:
  - id: ask
    type: approval
  - id: act
    type: http
    url: URL
"""


def put(world, text, workflow_id="disk", content_type="application/yaml", who="acme-operator"):
    return world.call(
        who, "PUT", f"/api/workflows/{workflow_id}", data=text, content_type=content_type
    )


@pytest.mark.parametrize("content_type", ["application/yaml", "text/yaml", "text/plain"])
def test_put_creates_then_each_change_is_a_new_version(world, content_type):
    created = put(world, YAML.replace("URL", "http://127.0.0.1:1/a"), content_type=content_type)
    same = put(world, YAML.replace("URL", "http://127.0.0.1:1/a"), content_type=content_type)
    changed = put(world, YAML.replace("URL", "http://127.0.0.1:1/b"), content_type=content_type)

    assert created.status_code == 200 and created.json["created"] and created.json["version"] == 1
    assert same.json["changed"] is False and same.json["version"] == 1
    assert changed.json["version"] == 2 and not changed.json["created"]
    got = world.call("acme-viewer", "GET", "/api/workflows/disk").json
    assert got["version"] == 2 and "/b" in got["yaml"]
    assert [item["id"] for item in world.call("acme-viewer", "GET", "/api/workflows").json] == [
        "disk"
    ]


def test_invalid_yaml_is_422_with_each_problem_placed(world):
    response = put(world, "id: disk\nname: 3\ntriggers: []\nsteps:\n  - id: a\n    type: nope\n")

    assert response.status_code == 422
    problems = response.json["errors"]["yaml"]
    assert {problem["path"] for problem in problems} >= {"name", "steps[0].type"}
    assert all(problem["line"] for problem in problems)


def test_the_path_id_must_equal_the_yaml_id(world):
    response = put(world, YAML.replace("URL", "http://x"), workflow_id="other")

    assert response.status_code == 422 and "does not match" in response.json["message"]


def test_json_body_is_415_for_a_workflow(world):
    response = world.call("acme-operator", "PUT", "/api/workflows/disk", json={"id": "disk"})

    assert response.status_code == 415


def test_disabled_workflow_is_409_and_unknown_is_404(world):
    put(world, YAML.replace("URL", "http://x"))
    world.call("acme-operator", "POST", "/api/workflows/disk/disable")

    disabled = world.client.post("/api/hooks/disk?tenant=acme", json={"id": 1})
    world.call("acme-operator", "POST", "/api/workflows/disk/enable")
    enabled = world.client.post("/api/hooks/disk?tenant=acme", json={"id": 1})

    assert disabled.status_code == 409
    assert enabled.status_code == 202
    assert world.client.post("/api/hooks/nope?tenant=acme", json={}).status_code == 404
    assert world.client.post("/api/hooks/disk/no-such-path?tenant=acme", json={}).status_code == 404


@pytest.mark.parametrize(
    ("data", "content_type", "expected_key"),
    [
        ('{"id": "j1"}', "application/json", "j1"),
        ("id=f1&x=2", "application/x-www-form-urlencoded", "f1"),
    ],
)
def test_hooks_take_json_and_form_bodies(world, saas_settings, data, content_type, expected_key):
    put(world, YAML.replace("URL", "http://x"))

    response = world.client.post(
        "/api/hooks/disk?tenant=acme", data=data, content_type=content_type
    )
    view = world.call("acme-viewer", "GET", f"/api/executions/{response.json['execution_id']}").json

    assert response.status_code == 202 and view["dedupe_key"] == expected_key


def test_hooks_take_raw_text(world):
    text_yaml = YAML.replace('"{{ body.id }}"', '"{{ body[:4] }}"').replace("URL", "http://x")
    put(world, text_yaml)

    response = world.client.post(
        "/api/hooks/disk?tenant=acme", data="PING from cron", content_type="text/plain"
    )

    assert response.status_code == 202
    assert (
        world.call("acme-viewer", "GET", f"/api/executions/{response.json['execution_id']}").json[
            "dedupe_key"
        ]
        == "PING"
    )


def test_broken_json_hook_is_400(world):
    put(world, YAML.replace("URL", "http://x"))

    response = world.client.post(
        "/api/hooks/disk?tenant=acme", data='{"id": ', content_type="application/json"
    )

    assert response.status_code == 400


def test_an_execution_keeps_the_version_it_started_with(world, saas_settings, loopback):
    put(world, YAML.replace("URL", f"{loopback.url}/v1"))
    execution_id = world.client.post("/api/hooks/disk?tenant=acme", json={"id": "pin"}).json[
        "execution_id"
    ]
    run_pending_steps(saas_settings, execution_id)
    put(world, YAML.replace("URL", f"{loopback.url}/v2"))

    world.call(
        "acme-admin",
        "POST",
        f"/api/approvals/{execution_id}/ask/resolve",
        json={"decision": "approve"},
    )
    run_pending_steps(saas_settings, execution_id)
    view = world.call("acme-viewer", "GET", f"/api/executions/{execution_id}").json

    assert view["status"] == "succeeded" and view["workflow_version"] == 1
    assert loopback.count("/v1") == 1 and loopback.count("/v2") == 0


def test_executions_list_filters_and_pages_newest_first(world):
    put(world, YAML.replace("URL", "http://x"))
    ids = [
        world.client.post("/api/hooks/disk?tenant=acme", json={"id": number}).json["execution_id"]
        for number in range(5)
    ]

    first = world.call(
        "acme-viewer", "GET", "/api/executions?limit=2&workflow_id=disk&status=queued"
    ).json
    second = world.call(
        "acme-viewer", "GET", f"/api/executions?limit=2&cursor={first['next_cursor']}"
    ).json
    last = world.call(
        "acme-viewer", "GET", f"/api/executions?limit=2&cursor={second['next_cursor']}"
    ).json

    assert [item["id"] for item in first["items"] + second["items"] + last["items"]] == ids[::-1]
    assert last["next_cursor"] is None
    assert world.call("acme-viewer", "GET", "/api/executions?status=succeeded").json["items"] == []
    assert world.call("acme-viewer", "GET", "/api/executions?status=bogus").status_code == 422


def test_a_workflow_with_an_active_execution_cannot_be_deleted(world):
    put(world, YAML.replace("URL", "http://x"))
    world.client.post("/api/hooks/disk?tenant=acme", json={"id": 1})

    assert world.call("acme-operator", "DELETE", "/api/workflows/disk").status_code == 409
