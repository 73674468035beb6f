"""Every bundled plugin starts from its settings, answers the probe and its send stub."""

from __future__ import annotations

import importlib

import pytest

from shared.plugin_token import load_plugin_token

CHANNELS = ["slack", "email", "telegram", "teams"]


def make_client(settings, module: str):
    app = importlib.import_module(f"plugins.{module}.app").create_app(settings)
    return app.test_client(), {"Authorization": f"Bearer {load_plugin_token(settings)}"}


@pytest.mark.parametrize(
    ("module", "name"), [*((c, c) for c in CHANNELS), ("kakao_mock", "kakao-mock")]
)
def test_probe(make_settings, module, name):
    client, auth = make_client(make_settings(), module)

    body = client.post("/probe", headers=auth).get_json()

    assert body["ok"] is True
    assert body["plugin"] == name
    assert body["capabilities"]


def test_the_token_from_the_environment_is_used(make_settings):
    client, _ = make_client(make_settings(plugin_token="from-env"), "slack")

    assert client.post("/probe", headers={"Authorization": "Bearer from-env"}).status_code == 200


@pytest.mark.parametrize(
    ("module", "path"),
    [
        *((channel, "/send") for channel in CHANNELS),
        ("kakao_mock", "/kakao/alimtalk/send"),
        ("kakao_mock", "/mock/config"),
    ],
)
def test_deeply_nested_json_is_a_bad_body_not_a_500(make_settings, module, path):
    client, auth = make_client(make_settings(), module)

    response = client.post(path, data="[" * 1000, headers=auth, content_type="application/json")

    # Each plugin answers a bad body its own way (a 400, or Slack's 200 with ok: false).
    assert response.status_code < 500
    assert response.get_json() is not None
