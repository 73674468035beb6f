"""Login, logout, expiry, lockout and what each role may do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.db import connection
from shared.models import ApiToken, LoginFailure, utcnow
from tests.api.conftest import PASSWORD, login


def test_login_returns_a_token_the_user_and_an_httponly_strict_cookie(world):
    response = login(world.client, "operator@acme.test")

    assert response.status_code == 200
    body = response.json
    assert body["user"] == {
        "id": world.users["acme-operator"],
        "email": "operator@acme.test",
        "role": "operator",
        "tenant_id": world.tenants["acme"],
        "created_at": body["user"]["created_at"],
    }
    assert body["token"] and body["expires_at"]
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "password" not in str(body).lower()


def test_the_session_cookie_authenticates_like_the_bearer_token(world):
    login(world.client, "viewer@acme.test")

    response = world.client.get("/api/me")

    assert response.status_code == 200
    assert response.json["email"] == "viewer@acme.test"


def test_logout_revokes_the_token(world):
    token_headers = world.headers("acme-viewer")

    assert world.client.post("/api/logout", headers=token_headers).status_code == 204
    response = world.client.get("/api/me", headers=token_headers)

    assert response.status_code == 401
    assert response.json["code"] == 401 and "revoked" in response.json["message"]


def test_an_expired_token_is_refused(world):
    with connection():
        ApiToken.update(expires_at=utcnow() - timedelta(seconds=1)).execute()

    response = world.call("acme-admin", "GET", "/api/me")

    assert response.status_code == 401
    assert "expired" in response.json["message"]


def test_token_lifetime_follows_the_setting(make_settings, tmp_path):
    from api.app import create_app
    from shared.bootstrap import prepare

    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'ttl.db'}",
        token_ttl_seconds="60",
        bootstrap_admin_email="root@example.test",
        bootstrap_admin_password=PASSWORD,
    )
    prepare(settings)
    client = create_app(settings).test_client()

    body = login(client, "root@example.test").json
    with connection():
        token = ApiToken.get()

    assert (token.expires_at - token.created_at) == timedelta(seconds=60)
    assert body["expires_at"].startswith(token.expires_at.isoformat()[:19])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}],
    ids=["none", "unknown", "wrong-scheme"],
)
def test_protected_routes_need_a_valid_token(world, headers):
    response = world.client.get("/api/me", headers=headers)

    assert response.status_code == 401
    assert set(response.json) >= {"code", "status", "message"}


def test_unknown_email_and_wrong_password_get_the_same_answer(world):
    unknown = login(world.client, "nobody@acme.test")
    wrong = login(world.client, "admin@acme.test", "wrong-password")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json == wrong.json


def test_ten_failures_lock_the_email_until_the_window_passes(world):
    for _ in range(10):
        assert login(world.client, "viewer@acme.test", "wrong-password").status_code == 401

    locked = login(world.client, "viewer@acme.test")

    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert login(world.client, "admin@acme.test").status_code == 200  # other emails unaffected

    with connection():
        for failure in LoginFailure.select():
            failure.failed_at -= timedelta(minutes=15, seconds=1)
            failure.save()

    assert login(world.client, "viewer@acme.test").status_code == 200


def test_failures_of_an_unknown_email_lock_it_too(world):
    for _ in range(10):
        login(world.client, "ghost@acme.test", "x")

    assert login(world.client, "ghost@acme.test", "x").status_code == 429


# (method, path, json body, status when allowed, roles allowed) — refused is always 403.
ROLE_MATRIX = [
    ("GET", "/api/me", None, 200, {"admin", "operator", "approver", "viewer"}),
    ("GET", "/api/recipients", None, 200, {"admin", "operator", "approver", "viewer"}),
    ("GET", "/api/groups", None, 200, {"admin", "operator", "approver", "viewer"}),
    ("POST", "/api/recipients", {"name": "Kim-{role}"}, 201, {"admin", "operator"}),
    ("POST", "/api/groups", {"name": "oncall-{role}"}, 201, {"admin", "operator"}),
    ("GET", "/api/users", None, 200, {"admin"}),
    (
        "POST",
        "/api/users",
        {"email": "new-{role}@acme.test", "password": PASSWORD, "role": "viewer"},
        201,
        {"admin"},
    ),
    ("GET", "/api/secrets", None, 200, {"admin"}),
    ("PUT", "/api/secrets/TOKEN_{role}", {"value": "v"}, 200, {"admin"}),
    ("GET", "/api/audit", None, 200, {"admin"}),
]


def _fill(value, role):
    if isinstance(value, dict):
        return {key: _fill(item, role) for key, item in value.items()}
    return value.replace("{role}", role) if isinstance(value, str) else value


@pytest.mark.parametrize("role", ["admin", "operator", "approver", "viewer"])
def test_each_role_is_allowed_or_refused(world, role):
    for method, path, body, allowed_status, allowed_roles in ROLE_MATRIX:
        response = world.call(f"acme-{role}", method, _fill(path, role), json=_fill(body, role))

        if role in allowed_roles:
            assert response.status_code == allowed_status, (method, path, response.json)
        else:
            assert response.status_code == 403, (method, path, response.json)
            assert role in response.json["message"]
