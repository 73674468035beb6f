"""The Slack plugin's HTTP app: ``POST /send`` (Block Kit) and ``POST /slack/interactions``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request

from plugins.base import create_plugin_app
from plugins.slack import interactions
from plugins.slack.channel import SlackChannel, build_client
from plugins.slack.config import BOT_TOKEN, SlackConfig, load_slack_config
from plugins.slack.core import CoreClient
from shared.errors import ChannelError
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

NAME = "slack"
VERSION = "0.1.0"
CAPABILITIES = ("send", "approval")
SEVERITIES = ("info", "warning", "critical")


def send_problem(body: Any) -> str | None:
    """What is wrong with a ``/send`` request body, or None."""
    if not isinstance(body, dict):
        return "expected a JSON object"
    if not isinstance(body.get("target"), str) or not body["target"].strip("# "):
        return "'target' must be a Slack channel name or user id"
    for key in ("message", "title", "execution_id", "step_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return f"{key!r} must be a string"
    if body.get("severity") is not None and body["severity"] not in SEVERITIES:
        return f"'severity' must be one of {', '.join(SEVERITIES)}"
    approval = body.get("approval")
    if approval is not None and not (
        isinstance(approval, dict)
        and all(
            isinstance(approval.get(key), str) and approval[key]
            for key in ("execution_id", "step_id")
        )
    ):
        return "'approval' must carry execution_id and step_id"
    return None


def create_app(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    channel: SlackChannel | None = None,
) -> Flask:
    """The Slack plugin app; SettingsError (one line per bad variable) for a malformed config."""
    config: SlackConfig = load_slack_config(environ)
    token = load_plugin_token(settings)
    channel = channel or SlackChannel(build_client(config))
    handler = interactions.InteractionHandler(
        config.signing_secret, CoreClient(settings.resolved_core_url, token), channel
    )
    app = create_plugin_app(
        NAME,
        VERSION,
        CAPABILITIES,
        plugin_token=token,
        check_config=config.missing,
        public_paths=(interactions.PATH,),
    )

    @app.post("/send")
    def send() -> Response:
        body = request.get_json(silent=True)
        # A bad request or a missing token fails the same way on every retry.
        problem = send_problem(body) or (
            f"{BOT_TOKEN} is not set" if not config.bot_token else None
        )
        if problem:
            return jsonify(ok=False, message_id=None, error=f"slack: {problem}", retryable=False)
        try:
            message_id = channel.deliver(body)
        except ChannelError as error:
            return jsonify(
                ok=False, message_id=None, error=error.message, retryable=error.retryable
            )
        return jsonify(ok=True, message_id=message_id, error=None, retryable=False)

    @app.post(interactions.PATH)
    def slack_interactions() -> Any:
        return handler.handle(request.get_data(), request.headers)

    return app
