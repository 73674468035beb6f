"""The plugin base app: token auth on every route, the probe answer and JSON errors."""

from __future__ import annotations

import pytest

from plugins.base import bearer_token, create_plugin_app

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client():
    app = create_plugin_app("demo", "1.2.3", ["send"], plugin_token=TOKEN)
    return app.test_client()


def test_probe_describes_the_plugin(client):
    response = client.post("/probe", headers=AUTH)

    assert response.status_code == 200
    assert response.get_json() == {
        "ok": True,
        "plugin": "demo",
        "version": "1.2.3",
        "capabilities": ["send"],
        "config_ok": True,
        "error": None,
    }


def test_probe_reports_a_configuration_problem():
    app = create_plugin_app(
        "demo", "1", [], plugin_token=TOKEN, check_config=lambda: "no bot token"
    )

    body = app.test_client().post("/probe", headers=AUTH).get_json()

    assert body["ok"] is True
    assert body["config_ok"] is False
    assert body["error"] == "no bot token"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer "},
    ],
)
def test_requests_without_the_token_get_401(client, headers):
    response = client.post("/probe", headers=headers)

    assert response.status_code == 401
    assert response.get_json() == {
        "code": "unauthorized",
        "status": 401,
        "message": "expected header 'Authorization: Bearer <plugin token>'",
    }


def test_unknown_route_without_token_reveals_nothing(client):
    assert client.get("/nope").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("post", "/nope", 404, "not_found"),
        ("get", "/probe", 405, "method_not_allowed"),
    ],
)
def test_errors_are_json(client, method, path, status, code):
    response = getattr(client, method)(path, headers=AUTH)

    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == code and body["status"] == status and body["message"]


def test_oversize_body_is_413_json(client):
    response = client.post("/probe", headers=AUTH, data=b"x" * (1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.get_json()["code"] == "request_entity_too_large"


def test_an_unexpected_error_is_500_json():
    app = create_plugin_app("demo", "1", [], plugin_token=TOKEN)

    @app.post("/boom")
    def boom():
        raise RuntimeError("kaput")

    response = app.test_client().post("/boom", headers=AUTH)

    assert response.status_code == 500
    assert response.get_json()["code"] == "internal_server_error"
    assert "kaput" not in response.get_data(as_text=True)


def test_an_empty_token_is_refused():
    with pytest.raises(ValueError, match="empty plugin token"):
        create_plugin_app("demo", "1", [], plugin_token="")


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, ""), ("Bearer abc", "abc"), ("bearer abc ", "abc"), ("Basic abc", ""), ("abc", "")],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token
