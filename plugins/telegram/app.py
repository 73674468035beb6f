"""The Telegram plugin's HTTP app: a stub answering probe and /send until delivery is written."""

from __future__ import annotations

from flask import Flask

from plugins.base import create_plugin_app, not_implemented_send
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

NAME = "telegram"
VERSION = "0.1.0"
CAPABILITIES = ("send",)


def create_app(settings: Settings) -> Flask:
    """The Telegram plugin app, authenticated with the shared plugin token."""
    app = create_plugin_app(NAME, VERSION, CAPABILITIES, plugin_token=load_plugin_token(settings))
    app.post("/send")(not_implemented_send)
    return app
