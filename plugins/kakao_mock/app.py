"""The mock Kakao AlimTalk provider's HTTP app: a stub answering probe and send for now."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from plugins.base import create_plugin_app
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

NAME = "kakao-mock"
VERSION = "0.1.0"
CAPABILITIES = ("kakao.alimtalk.send",)


def not_implemented_alimtalk_send() -> Response:
    """The provider contract's answer while sending is not written yet (SPEC §6.4)."""
    return jsonify(
        ok=False,
        provider_message_id=None,
        result={"accepted": 0, "failed": 0},
        error="not implemented yet",
    )


def create_app(settings: Settings) -> Flask:
    """The mock provider app, authenticated with the shared plugin token."""
    app = create_plugin_app(NAME, VERSION, CAPABILITIES, plugin_token=load_plugin_token(settings))
    app.post("/kakao/alimtalk/send")(not_implemented_alimtalk_send)
    return app
