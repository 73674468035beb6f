"""What a browser is told about our answers, and cookie-authenticated writes from other sites."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import requests

from tests.api.conftest import login
from tests.support.processes import Process

ORIGIN = "http://localhost"  # the test client's Host is "localhost"


def _logged_in(world, email: str = "admin@acme.test"):
    """The test client holding ``email``'s session cookie (and no bearer token)."""
    assert login(world.client, email).status_code == 200
    return world.client


def _create_recipient(client, **headers):
    name = f"r-{uuid.uuid4().hex[:8]}"
    return client.post("/api/recipients", json={"name": name}, headers=headers)


# --- security headers -------------------------------------------------------------


def test_api_answers_forbid_sniffing_framing_and_caching(world):
    response = world.call("acme-viewer", "GET", "/api/me")

    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert (
        response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["Cache-Control"] == "no-store"


def test_the_login_answer_holding_a_token_is_never_stored(world):
    response = login(world.client, "viewer@acme.test")

    assert response.status_code == 200 and response.json["token"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_errors_carry_the_headers_too(world):
    response = world.client.get("/api/me")

    assert response.status_code == 401
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_docs_page_may_load_swagger_ui_but_not_be_framed(world):
    response = world.client.get("/api/docs")

    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "https://cdn.jsdelivr.net" in policy and "frame-ancestors 'none'" in policy
    assert "connect-src 'self'" in policy
    # Every script the page loads comes from a source the policy names.
    assert 'src="https://cdn.jsdelivr.net/' in response.get_data(as_text=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gunicorn_names_no_version_and_sends_the_headers(make_settings, tmp_path):
    # Given the API as `aisopsflow api` runs it: a real gunicorn
    port = _free_port()
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        api_host="127.0.0.1",
        api_port=str(port),
        api_workers="1",
    )
    api = Process(settings, ["api"], tmp_path / "api.log").start()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert api.process.poll() is None, api.output()
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/me", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, api.output()
                time.sleep(0.1)
    finally:
        api.stop()

    assert response.status_code == 401
    server = response.headers.get("Server", "")
    assert not any(character.isdigit() for character in server), server
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


# --- same-origin check for cookie writes --------------------------------------------


def test_a_cookie_write_without_origin_or_referer_is_refused(world):
    client = _logged_in(world)

    response = _create_recipient(client)

    assert response.status_code == 403
    assert response.json["code"] == 403 and "Origin" in response.json["message"]


def test_a_cookie_write_from_another_origin_is_refused(world):
    client = _logged_in(world)

    response = _create_recipient(client, Origin="https://evil.example")

    assert response.status_code == 403
    assert "https://evil.example" in response.json["message"]


def test_a_cookie_write_with_a_foreign_referer_is_refused(world):
    client = _logged_in(world)

    response = _create_recipient(client, Referer="https://evil.example/attack.html")

    assert response.status_code == 403


def test_a_cookie_write_from_a_look_alike_host_is_refused(world):
    client = _logged_in(world)

    response = _create_recipient(client, Origin="http://localhost.evil.example")

    assert response.status_code == 403


def test_a_cookie_write_from_our_own_origin_is_allowed(world):
    client = _logged_in(world)

    by_origin = _create_recipient(client, Origin=ORIGIN)
    by_referer = _create_recipient(client, Referer=f"{ORIGIN}/ui/recipients")

    assert by_origin.status_code == 201, by_origin.json
    assert by_referer.status_code == 201, by_referer.json


def test_a_cookie_logout_from_another_site_is_refused(world):
    client = _logged_in(world, "viewer@acme.test")

    assert client.post("/api/logout", headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.get("/api/me").status_code == 200  # still logged in
    assert client.post("/api/logout", headers={"Origin": ORIGIN}).status_code == 204


def test_a_cookie_read_needs_no_origin(world):
    client = _logged_in(world)

    assert client.get("/api/recipients").status_code == 200


def test_a_bearer_write_needs_no_origin(world):
    response = world.call("acme-admin", "POST", "/api/recipients", json={"name": "bearer-made"})

    assert response.status_code == 201


@pytest.fixture
def listed_origin_world(make_settings, tmp_path):
    """An onprem API that trusts a UI served from another origin."""
    from api.app import create_app
    from shared.bootstrap import prepare
    from shared.db import connection
    from shared.models import User
    from shared.tenancy import ensure_default_tenant
    from tests.api.conftest import password_hash

    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", allowed_origins="https://ui.example:8443"
    )
    prepare(settings)
    app = create_app(settings)
    with connection():
        User.create(
            tenant=ensure_default_tenant(settings).id,
            email="admin@example.test",
            password_hash=password_hash(),
            role="admin",
        )
    client = app.test_client()
    assert login(client, "admin@example.test").status_code == 200
    return client


def test_a_listed_origin_may_write_with_the_cookie(listed_origin_world):
    client = listed_origin_world

    assert _create_recipient(client, Origin="https://ui.example:8443").status_code == 201
    assert _create_recipient(client, Origin="http://ui.example:8443").status_code == 403


def test_a_server_rendered_page_keeps_its_inline_style_and_form_but_cannot_be_framed(app):
    # The approval link's page: inline style attribute, a form posting back to itself.
    from flask import Response

    from api.response_headers import add_security_headers

    with app.test_request_context("/api/approval-links/some-token"):
        page = add_security_headers(Response("<p>x</p>", mimetype="text/html"))

    policy = page.headers["Content-Security-Policy"]
    assert "style-src 'unsafe-inline'" in policy and "form-action 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "script-src" not in policy
