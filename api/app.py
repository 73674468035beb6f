"""The Flask application factory."""

from __future__ import annotations

import logging

import redis
from flask import Flask, request
from flask_smorest import Api

from api import errors
from api.auth import SESSION_COOKIE, authenticate_request
from api.body_checks import MAX_BODY_BYTES, check_body, check_url_and_headers, handler_for
from api.resources import (
    approval_links,
    approvals,
    audit,
    auth,
    directory,
    executions,
    health,
    hooks,
    kakao,
    kakao_messages,
    plugins,
    runners,
    secrets,
    users,
    workflows,
)
from api.response_headers import add_security_headers
from shared.db import bind, database, release_connection
from shared.dispatch import Dispatcher
from shared.keyring import CachedKeyring
from shared.settings import Settings, load_settings

BLUEPRINTS = (
    health.blp,
    auth.blp,
    users.blp,
    directory.blp,
    secrets.blp,
    audit.blp,
    workflows.blp,
    hooks.blp,
    executions.blp,
    approvals.blp,
    approval_links.blp,
    plugins.blp,
    kakao.blp,
    kakao_messages.blp,
    runners.blp,
)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API for ``settings`` (default: read from the environment)."""
    settings = settings or load_settings()
    app = Flask("aisopsflow")
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_TITLE="AisOpsFlow",
        API_VERSION="0.1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        API_SPEC_OPTIONS={"security": [{"bearerAuth": []}, {"cookieAuth": []}]},
    )
    app.json.sort_keys = False
    logging.getLogger().setLevel(settings.log_level)

    bind(settings.resolved_database_url)
    app.extensions["aisopsflow.keys"] = CachedKeyring(settings)
    app.extensions["aisopsflow.dispatcher"] = Dispatcher(settings)
    app.extensions["aisopsflow.redis"] = redis.Redis.from_url(
        settings.resolved_redis_url, socket_timeout=2, socket_connect_timeout=2
    )

    api = Api(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme(
        "cookieAuth", {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}
    )
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    errors.register(app)

    @app.before_request
    def open_request() -> None:
        database.obj.connect(reuse_if_open=True)
        if request.routing_exception is not None:
            return  # let Flask raise the 404/405 as JSON
        if request.blueprint == "api-docs":
            return  # the OpenAPI document and docs UI are public
        view = app.view_functions.get(request.endpoint or "")
        handler = handler_for(view, request.method)
        check_url_and_headers()
        check_body(handler)
        authenticate_request(handler)

    app.after_request(add_security_headers)

    @app.teardown_request
    def close_request(exc: BaseException | None) -> None:
        release_connection(failed=exc is not None)

    return app
