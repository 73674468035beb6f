"""GET /api/plugins shows each plugin's URL and probe; the directory normalises phone numbers."""

from __future__ import annotations

import pytest

from tests.support.loopback import Loopback


@pytest.fixture
def probed_app(make_settings, tmp_path):
    from api.app import create_app
    from shared.bootstrap import prepare

    with Loopback() as server:
        server.route(
            "/slack/probe",
            body={
                "ok": True,
                "plugin": "slack",
                "version": "0.1.0",
                "capabilities": ["send"],
                "config_ok": False,
                "error": "AISOPSFLOW_SLACK_BOT_TOKEN is not set",
            },
        )
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path / 'p.db'}",
            plugin_urls=f"slack={server.url}/slack",
            plugin_base_port="1",
        )
        prepare(settings)
        yield create_app(settings), server


def test_plugins_list_urls_and_last_probe(probed_app):
    from shared.db import connection
    from shared.models import User
    from shared.sessions import open_session
    from shared.tenancy import tenant_by_slug

    app, server = probed_app
    with connection():
        user = User.create(
            tenant=tenant_by_slug("default"),
            email="v@example.test",
            password_hash="x",
            role="viewer",
        )
        token = open_session(app.config["SETTINGS"], user)[0]

    listed = {
        item["name"]: item
        for item in app.test_client()
        .get("/api/plugins", headers={"Authorization": f"Bearer {token}"})
        .json
    }

    assert set(listed) == {"slack", "email", "telegram", "teams", "kakao-mock"}
    assert listed["slack"]["url"] == f"{server.url}/slack"
    assert (
        listed["slack"]["probe"]["config_ok"] is False
        and "SLACK_BOT_TOKEN" in listed["slack"]["probe"]["error"]
    )
    assert (
        listed["email"]["url"] == "http://127.0.0.1:2" and listed["email"]["probe"]["ok"] is False
    )
    assert "unreachable" in listed["email"]["probe"]["error"]


@pytest.mark.parametrize(
    ("given", "stored"), [("010-1234-5678", "01012345678"), ("+82 10 1234 5678", "01012345678")]
)
def test_recipient_phones_are_normalised(world, given, stored):
    response = world.call(
        "acme-operator", "POST", "/api/recipients", json={"name": "Kim", "phone": given}
    )

    assert response.status_code == 201 and response.json["phone"] == stored


@pytest.mark.parametrize(("field", "value"), [("phone", "call me"), ("email", "not-an-email")])
def test_bad_addresses_are_422_naming_the_field(world, field, value):
    response = world.call(
        "acme-operator", "POST", "/api/recipients", json={"name": "Kim", field: value}
    )

    assert response.status_code == 422 and field in response.json["errors"]["json"]


def test_deleting_a_recipient_removes_its_memberships(world):
    kim = world.call("acme-operator", "POST", "/api/recipients", json={"name": "Kim"}).json["id"]
    group = world.call(
        "acme-operator", "POST", "/api/groups", json={"name": "oncall", "members": [kim]}
    ).json["id"]

    world.call("acme-operator", "DELETE", f"/api/recipients/{kim}")

    assert world.call("acme-viewer", "GET", f"/api/groups/{group}/members").json == {"members": []}
