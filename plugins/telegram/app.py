"""The Telegram plugin's HTTP app: ``POST /send`` via the Bot API, ``POST /telegram/webhook``."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, Response, jsonify, request

from plugins.base import create_plugin_app, error_response
from plugins.telegram.bot_api import BotApi, guard_logs
from plugins.telegram.callback_data import CallbackKeys
from plugins.telegram.config import TelegramConfig, load_config
from plugins.telegram.messages import approval_keyboard, message_text
from plugins.telegram.webhook import CoreClient, handle_update
from shared.errors import ChannelError
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

NAME = "telegram"
VERSION = "0.1.0"
CAPABILITIES = ("send", "approval")
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


def _sent(
    ok: bool, message_id: str | None = None, error: str | None = None, retryable: bool = False
) -> Response:
    return jsonify(ok=ok, message_id=message_id, error=error, retryable=retryable)


def _malformed(body: Any) -> str | None:
    """What is wrong with a ``/send`` body's shape, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("target"), str):
        return "expected a JSON object with a string 'target'"
    if not isinstance(body.get("message") or "", str) or not isinstance(
        body.get("title") or "", str
    ):
        return "'message' and 'title' must be strings"
    approval = body.get("approval")
    if approval is not None and not (
        isinstance(approval, dict)
        and isinstance(approval.get("execution_id"), str)
        and isinstance(approval.get("step_id"), str)
    ):
        return "'approval' must be an object with string 'execution_id' and 'step_id'"
    return None


def _send_payload(
    config: TelegramConfig, body: dict[str, Any], keys: CallbackKeys
) -> dict[str, Any]:
    """The ``sendMessage`` fields; ValueError when the target is no chat id, @channel or alias."""
    payload: dict[str, Any] = {
        "chat_id": config.chat_id(body["target"].strip()),
        "text": message_text(
            body.get("title") or "", str(body.get("severity") or "info"), body.get("message") or ""
        ),
        "parse_mode": "HTML",
    }
    approval = body.get("approval")
    if approval:
        payload["reply_markup"] = approval_keyboard(
            approval["execution_id"], approval["step_id"], keys
        )
    return payload


def create_app(settings: Settings, config: TelegramConfig | None = None) -> Flask:
    """The Telegram plugin app; ``config`` defaults to the ``AISOPSFLOW_TELEGRAM_*`` variables."""
    config = config or load_config()
    plugin_token = load_plugin_token(settings)
    app = create_plugin_app(
        NAME,
        VERSION,
        CAPABILITIES,
        plugin_token=plugin_token,
        check_config=config.problem,
        public_paths=(WEBHOOK_PATH,),
    )
    guard_logs(config.bot_token)
    bot = BotApi(config.api_url, config.bot_token)
    core = CoreClient(settings.resolved_core_url, plugin_token)
    keys = CallbackKeys()

    @app.post("/send")
    def send() -> Response | tuple[Response, int]:
        body = request.get_json(silent=True)
        malformed = _malformed(body)
        if malformed:
            return error_response(400, "bad_request", malformed)
        if config.problem():
            return _sent(False, error=f"telegram: {config.problem()}")
        try:
            payload = _send_payload(config, body, keys)
        except ValueError as error:
            return _sent(False, error=str(error))
        try:
            result = bot.call("sendMessage", payload)
        except ChannelError as error:
            return _sent(False, error=error.message, retryable=error.retryable)
        message_id = (result or {}).get("message_id")
        return _sent(True, message_id=None if message_id is None else str(message_id))

    @app.post(WEBHOOK_PATH)
    def webhook() -> tuple[Response, int]:
        presented = (request.headers.get(SECRET_HEADER) or "").encode()
        expected = config.webhook_secret.encode()
        # An unset secret refuses every update: an open webhook would let anyone press buttons.
        if not expected or not hmac.compare_digest(presented, expected):
            return error_response(401, "unauthorized", f"expected header {SECRET_HEADER!r}")
        update = request.get_json(silent=True)
        try:
            if isinstance(update, dict):
                handle_update(update, bot=bot, core=core, keys=keys)
        except Exception:
            app.logger.exception("could not handle a Telegram update")
        # Always 200 once authenticated: any other answer makes Telegram redeliver the update.
        return jsonify(ok=True), 200

    return app
