"""Every failure answers the JSON error shape {code, status, message, errors?} with the right status."""

from __future__ import annotations

import io

import pytest


def assert_error_shape(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.json
    assert body["code"] == status and isinstance(body["status"], str) and body["message"]
    assert set(body) <= {"code", "status", "message", "errors"}
    return body


def test_malformed_json_is_400_naming_the_position(world):
    response = world.call(
        "acme-admin", "POST", "/api/recipients", data='{"name": ', content_type="application/json"
    )

    body = assert_error_shape(response, 400)
    assert "not valid JSON" in body["message"] and "line 1" in body["message"]


def test_wrong_content_type_is_415(world):
    response = world.call(
        "acme-admin", "POST", "/api/recipients", data="name=Kim", content_type="text/plain"
    )

    body = assert_error_shape(response, 415)
    assert "application/json" in body["message"]


def test_oversize_body_is_413(world):
    huge = '{"name": "' + "x" * (1024 * 1024 + 1) + '"}'

    response = world.call(
        "acme-admin", "POST", "/api/recipients", data=huge, content_type="application/json"
    )

    assert_error_shape(response, 413)


def test_oversize_chunked_body_is_413(world):
    # No Content-Length: the limit must hold while the body is read.
    response = world.call(
        "acme-admin",
        "POST",
        "/api/recipients",
        input_stream=io.BytesIO(b"x" * (1024 * 1024 + 10)),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert_error_shape(response, 413)


def test_unknown_route_is_404(world):
    body = assert_error_shape(world.call("acme-admin", "GET", "/api/nothing-here"), 404)

    assert "/api/nothing-here" in body["message"]


def test_unknown_route_is_404_even_without_login(client):
    assert_error_shape(client.get("/api/nothing-here"), 404)


def test_wrong_method_is_405_listing_the_allowed_ones(world):
    response = world.call("acme-admin", "DELETE", "/api/me")

    body = assert_error_shape(response, 405)
    assert "GET" in body["message"] and "GET" in response.headers["Allow"]


def test_validation_errors_are_422_naming_each_field(world):
    response = world.call(
        "acme-admin", "POST", "/api/users", json={"email": "nope", "role": "king", "extra": 1}
    )

    body = assert_error_shape(response, 422)
    fields = body["errors"]["json"]
    assert set(fields) == {"email", "password", "role", "extra"}
    assert "json.email" in body["message"]


def test_conflicts_are_409_and_write_nothing(world):
    world.call("acme-admin", "POST", "/api/recipients", json={"name": "Kim"})
    before = len(world.call("acme-admin", "GET", "/api/audit").json)

    response = world.call("acme-admin", "POST", "/api/recipients", json={"name": "Kim"})

    assert_error_shape(response, 409)
    assert len(world.call("acme-admin", "GET", "/api/audit").json) == before


def test_an_unexpected_error_is_a_json_500_without_internals(app, caplog):
    @app.route("/api/boom")
    def boom():
        raise RuntimeError("internal detail /etc/secret")

    app.view_functions["boom"]._public = True
    app.config["TESTING"] = False  # let the handler answer instead of re-raising
    app.config["PROPAGATE_EXCEPTIONS"] = False

    response = app.test_client().get("/api/boom")

    body = assert_error_shape(response, 500)
    assert "internal detail" not in body["message"]
    assert "internal detail" in caplog.text  # the operator still gets the traceback


@pytest.mark.parametrize("path", ["/api/login"])
def test_login_with_missing_fields_is_422(client, path):
    body = assert_error_shape(client.post(path, json={}), 422)

    assert set(body["errors"]["json"]) == {"email", "password"}
