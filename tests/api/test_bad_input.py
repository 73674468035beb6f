"""Hostile input is a JSON 400/422 naming the place, never a 500: nesting, NUL, huge numbers.

NUL cases run on PostgreSQL, which refuses ``\\x00`` in text: before the central check a
NUL reaching a column was a driver error and a 500 there (SQLite stores it silently).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from shared.db import connection
from shared.models import User
from shared.sessions import open_session
from shared.tenancy import tenant_by_slug
from tests.api.test_errors import assert_error_shape

DEEP = "[" * 1000
DEEP_BUT_CLOSED = "[" * 100 + "]" * 100

HOOK_ON_FIELD = """\
id: on-field
name: Keyed by a body field
triggers:
  - type: webhook
    dedupe_key: "{{ body.id }}"
steps:
  - id: ping
    type: http
    url: https://example.com/ping
"""
HOOK_ON_TEXT = HOOK_ON_FIELD.replace("on-field", "on-text").replace("body.id", "body")


@dataclass
class Api:
    """The API on one backend, with an admin's token."""

    client: Any
    token: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def backend() -> str:
    """PostgreSQL only (skips locally without it, fails in CI, as every backend test)."""
    return "postgres"


@pytest.fixture
def api(make_settings: Any, database_url: str) -> Api:
    """The onprem API on the current backend, two webhook workflows keyed by the body."""
    from api.app import create_app
    from shared.bootstrap import prepare

    settings = make_settings(database_url=database_url)
    prepare(settings)
    app = create_app(settings)
    app.config["TESTING"] = True
    with connection():
        tenant = tenant_by_slug(settings.default_tenant_slug)
        admin = User.create(
            tenant=tenant, email="admin@example.test", password_hash="x", role="admin"
        )
        result = Api(app.test_client(), open_session(settings, admin)[0])
    for workflow_id, text in (("on-field", HOOK_ON_FIELD), ("on-text", HOOK_ON_TEXT)):
        response = result.call(
            "PUT", f"/api/workflows/{workflow_id}", data=text, content_type="application/yaml"
        )
        assert response.status_code == 200, response.json
    return result


# ---- nesting --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [DEEP, DEEP_BUT_CLOSED], ids=["unclosed", "closed"])
@pytest.mark.parametrize(
    ("who", "path"),
    [
        (None, "/api/login"),
        (None, "/api/hooks/anything?tenant=acme"),
        ("acme-admin", "/api/recipients"),
    ],
    ids=["login", "hook", "recipients"],
)
def test_deeply_nested_json_is_400(world, who, path, text):
    headers = world.headers(who) if who else {}

    response = world.client.post(path, data=text, content_type="application/json", headers=headers)

    body = assert_error_shape(response, 400)
    assert "nested" in body["message"] and "64" in body["message"]


def test_nesting_is_named_where_it_goes_too_deep(world):
    value: Any = "x"
    for _ in range(70):
        value = {"deeper": value}

    response = world.call("acme-admin", "POST", "/api/recipients", json={"name": value})

    body = assert_error_shape(response, 400)
    assert body["message"].startswith("body.name.deeper.deeper")


def test_a_webhook_with_a_json_suffix_type_is_checked_too(world):
    response = world.client.post(
        "/api/hooks/anything?tenant=acme", data=DEEP, content_type="application/vnd.x+json"
    )

    assert_error_shape(response, 400)


def test_a_4301_digit_json_number_is_400(world):
    response = world.call(
        "acme-admin",
        "POST",
        "/api/recipients",
        data='{"name": ' + "1" * 4301 + "}",
        content_type="application/json",
    )

    body = assert_error_shape(response, 400)
    assert "over 4300 digits" in body["message"]


# ---- NUL and unpaired surrogates, on PostgreSQL ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"name": "Kim\\u0000Lee"}', "body.name contains a NUL character"),
        ('{"name": "Kim", "x\\u0000": 1}', "body has a key 'x\\x00'"),
        ('{"name": "Kim\\ud800"}', "body.name contains an unpaired surrogate"),
    ],
    ids=["string", "key", "surrogate"],
)
def test_unstorable_text_in_a_json_body_is_400_naming_where(api, raw, where):
    response = api.call("POST", "/api/recipients", data=raw, content_type="application/json")

    body = assert_error_shape(response, 400)
    assert body["message"].startswith(where)


def test_a_nul_in_workflow_yaml_is_422_with_its_place(api):
    text = HOOK_ON_FIELD.replace("name: Keyed by a body field", 'name: "Keyed\\0"')

    response = api.call(
        "PUT", "/api/workflows/on-field", data=text, content_type="application/yaml"
    )

    body = assert_error_shape(response, 422)
    [problem] = body["errors"]["yaml"]
    assert problem["path"] == "name" and "NUL" in problem["message"] and problem["line"] == 2


def test_a_raw_nul_byte_in_workflow_yaml_is_400_with_its_place(api):
    text = HOOK_ON_FIELD.replace("Keyed by", "Keyed\x00by")

    response = api.call(
        "PUT", "/api/workflows/on-field", data=text, content_type="application/yaml"
    )

    body = assert_error_shape(response, 400)
    assert "line 2, column 12" in body["message"]


@pytest.mark.parametrize(
    ("workflow_id", "data", "content_type", "where"),
    [
        ("on-field", json.dumps({"id": "a\x00b"}), "application/json", "body.id contains"),
        ("on-field", json.dumps({"a\x00": 1}), "application/json", "body has a key"),
        ("on-field", "id=a%00b", "application/x-www-form-urlencoded", "form field 'id'"),
        ("on-text", "a\x00b", "text/plain", "request body (line 1, column 2)"),
    ],
    ids=["json-string", "json-key", "form", "text"],
)
def test_a_nul_in_a_webhook_body_is_400(api, workflow_id, data, content_type, where):
    response = api.client.post(f"/api/hooks/{workflow_id}", data=data, content_type=content_type)

    body = assert_error_shape(response, 400)
    assert body["message"].startswith(where) and "NUL" in body["message"]


def test_a_webhook_without_nul_is_still_accepted(api):
    response = api.client.post("/api/hooks/on-field", json={"id": "a-b"})

    assert response.status_code == 202, response.json


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/api/workflows/on%00field", "the URL path contains a NUL"),
        ("/api/audit?actor=a%00b", "query parameter 'actor' contains a NUL"),
        ("/api/audit?a%00b=1", "query parameter 'a\\x00b' contains a NUL"),
    ],
    ids=["path", "query-value", "query-name"],
)
def test_a_nul_in_the_url_is_400(api, path, where):
    response = api.call("GET", path)

    body = assert_error_shape(response, 400)
    assert body["message"].startswith(where)


def test_a_nul_in_a_header_is_400(api):
    response = api.client.post("/api/hooks/on-field", json={"id": "x"}, headers={"X-Tag": "a\x00"})

    body = assert_error_shape(response, 400)
    assert body["message"].startswith("header 'X-Tag' contains a NUL")


# ---- workflow YAML over the API ---------------------------------------------------------------


def test_a_4301_digit_yaml_integer_is_422_with_its_place(world):
    text = HOOK_ON_FIELD.replace("id: on-field\n", "id: big\nvars:\n  n: " + "1" * 4301 + "\n")

    response = world.call(
        "acme-admin", "PUT", "/api/workflows/big", data=text, content_type="application/yaml"
    )

    body = assert_error_shape(response, 422)
    [problem] = body["errors"]["yaml"]
    assert "over 4300 digits" in problem["message"] and (problem["line"], problem["column"]) == (
        3,
        6,
    )
