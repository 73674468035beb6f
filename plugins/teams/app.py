"""The Teams plugin's HTTP app: ``POST /send`` posts a MessageCard to an incoming webhook."""

from __future__ import annotations

from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from plugins.base import create_plugin_app, error_response
from plugins.teams.cards import message_card
from plugins.teams.config import TeamsConfig, load_config
from shared.errors import OutboundRefused
from shared.outbound import OutboundPolicy, tenant_session
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

NAME = "teams"
VERSION = "0.1.0"
CAPABILITIES = ("send",)
#: How long to wait for the webhook to accept a connection and to answer, in milliseconds.
TIMEOUT_MS = (3000, 10_000)


def _sent(ok: bool, error: str | None = None, retryable: bool = False) -> Response:
    # Incoming webhooks answer "1", never an id: message_id is always null.
    return jsonify(ok=ok, message_id=None, error=error, retryable=retryable)


def _post(
    session: requests.Session, url: str, card: dict[str, Any], *, follow_redirects: bool
) -> Response:
    """Deliver the card. Errors never quote the URL: its path is the webhook's secret."""
    try:
        response = session.post(
            url,
            json=card,
            timeout=tuple(ms / 1000 for ms in TIMEOUT_MS),
            allow_redirects=follow_redirects,
        )
    except OutboundRefused as error:
        return _sent(False, f"teams: webhook URL refused by the outbound policy: {error.message}")
    except requests.RequestException as error:
        return _sent(False, f"teams: the webhook did not answer ({type(error).__name__})", True)
    status, text = response.status_code, response.text.strip()
    if status == 429 or status >= 500:
        return _sent(False, f"teams answered HTTP {status}", True)
    if status >= 300:
        return _sent(False, f"teams answered HTTP {status}: {text[:200]}".rstrip(": "))
    # Connector webhooks answer 200 "1"; a failure behind them comes back as 200 with text.
    if text not in ("", "1"):
        busy = "429" in text or "HTTP error 5" in text
        return _sent(False, f"teams: {text[:200]}", busy)
    return _sent(True)


def create_app(settings: Settings, config: TeamsConfig | None = None) -> Flask:
    """The Teams plugin app; ``config`` defaults to ``AISOPSFLOW_TEAMS_BASE_URL``.

    In saas mode a full webhook URL in a target is a tenant's: it is held to the
    outbound policy when connecting (Core checked it too) and redirects are not
    followed. A suffix goes to the operator's base URL, as before.
    """
    config = config or load_config()
    app = create_plugin_app(NAME, VERSION, CAPABILITIES, plugin_token=load_plugin_token(settings))
    session = requests.Session()
    policy = OutboundPolicy.for_tenants(settings)
    tenant_urls = tenant_session(policy)

    @app.post("/send")
    def send() -> Response | tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("target"), str):
            return error_response(
                400, "bad_request", "expected a JSON object with a string 'target'"
            )
        try:
            url = config.webhook_url(body["target"])
        except ValueError as error:
            return _sent(False, str(error))
        approval = body.get("approval") if isinstance(body.get("approval"), dict) else None
        card = message_card(
            str(body.get("title") or ""),
            str(body.get("message") or ""),
            str(body.get("severity") or "info"),
            approval,
        )
        chosen = tenant_urls if config.is_full_url(body["target"]) else session
        return _post(chosen, url, card, follow_redirects=not policy.enforced)

    return app
