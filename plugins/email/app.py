"""The Email plugin's HTTP app: ``POST /probe`` and ``POST /send`` over SMTP (docs/plugins.md)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, Response, jsonify, request

from plugins.base import create_plugin_app
from plugins.email.channel import EmailChannel
from plugins.email.config import load_email_config, process_environ
from shared.errors import ChannelError, SettingsError
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

NAME = "email"
VERSION = "0.1.0"
CAPABILITIES = ("send", "approval")

log = logging.getLogger(__name__)


def create_app(settings: Settings, environ: Mapping[str, str] | None = None) -> Flask:
    """The Email (SMTP) plugin app; SMTP settings come from ``environ`` (default: the process's).

    Missing or malformed SMTP settings do not stop the plugin from starting (``aisopsflow
    up`` starts every bundled plugin): ``/probe`` reports them and ``/send`` refuses.
    """
    try:
        channel: EmailChannel | None = EmailChannel(
            load_email_config(process_environ() if environ is None else environ)
        )
        problem = None
    except SettingsError as error:
        channel, problem = None, "; ".join(error.errors)
        log.warning("email plugin is not configured: %s", problem)

    app = create_plugin_app(
        NAME,
        VERSION,
        CAPABILITIES,
        plugin_token=load_plugin_token(settings),
        check_config=lambda: problem,
    )

    @app.post("/send")
    def send() -> Response:
        payload = request.get_json()
        try:
            if channel is None:
                raise ChannelError(f"email: not configured: {problem}", retryable=False)
            message_id = channel.deliver(payload)
        except ChannelError as error:
            log.warning("send failed (retryable=%s): %s", error.retryable, error.message)
            return jsonify(
                ok=False, message_id=None, error=error.message, retryable=error.retryable
            )
        return jsonify(ok=True, message_id=message_id, error=None, retryable=False)

    return app
