"""The Flask app every plugin starts from: token auth, ``POST /probe`` and JSON errors."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

#: A check of the plugin's own configuration: None when usable, else what is wrong.
ConfigCheck = Callable[[], str | None]
#: Largest request body a plugin accepts, in bytes (as the Core API).
MAX_BODY_BYTES = 1024 * 1024


class _BoundedJSONProvider(DefaultJSONProvider):
    """Reads JSON whose nesting overflows the parser as invalid JSON, not as a crash.

    ``json.loads`` raises RecursionError on ``[`` x 1000; Flask's ``get_json`` only
    treats ValueError as a bad body, so without this such a body answered 500.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    """The JSON error shape shared with the Core API: ``{code, status, message}``."""
    return jsonify(code=code, status=status, message=message), status


def _code_for(error: HTTPException) -> str:
    name = error.name or "error"
    return name.lower().replace(" ", "_").replace("'", "")


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ``""``."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def create_plugin_app(
    name: str,
    version: str,
    capabilities: Sequence[str],
    *,
    plugin_token: str,
    check_config: ConfigCheck | None = None,
    public_paths: Sequence[str] = (),
) -> Flask:
    """A Flask app answering ``POST /probe``; every request must carry the plugin token.

    Plugins add their own routes (``/send``, ...) to the returned app. ``public_paths``
    are called by an upstream service that authenticates its own way (Slack's request
    signature, Telegram's secret token); those views must check it themselves.
    """
    if not plugin_token:
        raise ValueError(f"plugin {name!r}: an empty plugin token would let anyone call it")
    expected = plugin_token.encode()
    app = Flask(f"plugins.{name}")
    app.json = _BoundedJSONProvider(app)
    app.config["PLUGIN_NAME"] = name
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.before_request
    def require_token() -> tuple[Response, int] | None:
        if request.path in public_paths:
            return None
        presented = bearer_token(request.headers.get("Authorization")).encode()
        # compare_digest: the time taken must not tell how much of the token matched.
        if not hmac.compare_digest(presented, expected):
            return error_response(
                401, "unauthorized", "expected header 'Authorization: Bearer <plugin token>'"
            )
        # MAX_CONTENT_LENGTH acts only when a view reads the body; refuse big ones up front.
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise RequestEntityTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
        return None

    @app.post("/probe")
    def probe() -> Response:
        error = check_config() if check_config else None
        body: dict[str, Any] = {
            "ok": True,
            "plugin": name,
            "version": version,
            "capabilities": list(capabilities),
            "config_ok": error is None,
            "error": error,
        }
        return jsonify(body)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        return error_response(error.code or 500, _code_for(error), error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response, int]:
        app.logger.exception("unhandled error in plugin %s", name)
        return error_response(500, "internal_server_error", InternalServerError.description)

    return app
