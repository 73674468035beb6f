"""Login, logout and who-am-I."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, jsonify
from flask_smorest import Blueprint

from api.auth import SESSION_COOKIE, current_session, public
from api.schemas import StrictSchema, UserSchema
from shared.sessions import login, logout

blp = Blueprint("auth", __name__, url_prefix="/api", description="Sessions")


class LoginSchema(StrictSchema):
    email = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=254))
    password = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(min=1, max=1024)
    )


class LoginResultSchema(ma.Schema):
    token = ma.fields.String(required=True)
    expires_at = ma.fields.DateTime(required=True)
    user = ma.fields.Nested(UserSchema, required=True)


@blp.route("/login", methods=["POST"])
@blp.arguments(LoginSchema)
@blp.response(200, LoginResultSchema)
@blp.alt_response(401, description="Wrong email or password")
@blp.alt_response(429, description="Too many failed logins for this email")
@public
def post_login(credentials: dict[str, Any]) -> Any:
    """Exchange email and password for a bearer token and an HttpOnly session cookie."""
    settings = current_app.config["SETTINGS"]
    token, session = login(settings, credentials["email"], credentials["password"])
    body = LoginResultSchema().dump(
        {"token": token, "expires_at": session.token.expires_at, "user": session.user}
    )
    response = jsonify(body)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.token_ttl_seconds,
        httponly=True,
        samesite="Strict",
        secure=settings.cookie_secure,
        path="/",
    )
    return response


@blp.route("/logout", methods=["POST"])
@blp.response(204)
def post_logout() -> Any:
    """Revoke the caller's token; it answers 401 afterwards."""
    logout(current_session())
    response = current_app.response_class(status=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@blp.route("/me", methods=["GET"])
@blp.response(200, UserSchema)
def get_me() -> Any:
    """The logged-in user."""
    return current_session().user
