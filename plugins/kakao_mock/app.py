"""The mock Kakao AlimTalk provider's HTTP app: the provider contract plus ``/mock/*`` controls.

``POST /kakao/alimtalk/send`` answers as SPEC §6.4 says, a repeated ``trace_id`` with the
first answer and no new send (docs/plugins.md); ``/mock/config``, ``/mock/messages``
and ``/mock/reset`` let tests and operators steer it and see what it took. Accepted
recipients get delivery events posted back to Core (see ``delivery``).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from flask import Flask, Response, jsonify, request

from plugins.base import create_plugin_app, error_response
from plugins.kakao_mock.config import MockConfig
from plugins.kakao_mock.delivery import DeliverySimulator
from plugins.kakao_mock.outcomes import judge_recipients, send_error
from plugins.kakao_mock.send_request import parse_send_request
from plugins.kakao_mock.state import Message, MockState, utc_timestamp
from shared.errors import BadRequest
from shared.plugin_token import load_plugin_token
from shared.settings import Settings

NAME = "kakao-mock"
VERSION = "0.1.0"
CAPABILITIES = ("kakao.alimtalk.send", "kakao.delivery_events")
#: Paths that keep answering while the mock plays ``down``.
CONTROL_PREFIX = "/mock/"


def _bad_request(error: BadRequest) -> tuple[Response, int]:
    return error_response(400, "bad_request", error.message)


def _answer(message: Message) -> dict[str, Any]:
    """The JSON a send is answered with."""
    recipients = message.recipients
    accepted = sum(1 for item in recipients if item.status == "accepted")
    error = send_error(recipients)
    return {
        "ok": error is None,
        "provider_message_id": message.provider_message_id,
        "result": {"accepted": accepted, "failed": len(recipients) - accepted},
        "error": error,
        "recipients": [item.as_dict() for item in recipients],
    }


def create_app(settings: Settings, config: MockConfig | None = None) -> Flask:
    """The mock provider app; ``config`` defaults to the ``AISOPSFLOW_KAKAO_MOCK_*`` settings."""
    plugin_token = load_plugin_token(settings)
    app = create_plugin_app(NAME, VERSION, CAPABILITIES, plugin_token=plugin_token)
    state = MockState(config or MockConfig.from_settings(settings))
    simulator = DeliverySimulator(settings.resolved_core_url, plugin_token, state)

    @app.before_request
    def play_down() -> tuple[Response, int] | None:
        # Registered after the token check: a caller without the token still gets 401.
        if state.config.down and not request.path.startswith(CONTROL_PREFIX):
            return error_response(
                503,
                "service_unavailable",
                'kakao-mock is down on purpose; POST /mock/config {"down": false} brings it back',
            )
        return None

    @app.post("/kakao/alimtalk/send")
    def alimtalk_send() -> Response | tuple[Response, int]:
        try:
            send = parse_send_request(request.get_json(silent=True))
        except BadRequest as error:
            return _bad_request(error)
        config = state.config
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)
        recipients = judge_recipients(send.to, config, random.random)
        message = Message(
            provider_message_id=f"mock-{uuid.uuid4().hex}",
            tenant_id=send.tenant_id,
            provider_id=send.provider_id,
            template_id=send.template_id,
            to=list(send.to),
            vars=send.vars,
            trace_id=send.trace_id,
            recipients=recipients,
            received_at=utc_timestamp(),
        )
        # A repeated trace id is the same send: its first answer, and nothing sent again.
        answer, generation = state.record(message, _answer(message))
        if generation is not None:
            simulator.schedule(message, config, generation)
        return jsonify(answer)

    @app.get("/mock/config")
    def get_config() -> Response:
        return jsonify(state.config.as_dict())

    @app.post("/mock/config")
    def set_config() -> Response | tuple[Response, int]:
        try:
            return jsonify(state.configure(request.get_json(silent=True)).as_dict())
        except BadRequest as error:
            return _bad_request(error)

    @app.get("/mock/messages")
    def messages() -> Response:
        return jsonify(messages=state.messages())

    @app.post("/mock/reset")
    def reset() -> Response:
        state.reset()
        return jsonify(ok=True)

    return app
