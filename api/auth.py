"""Who is calling: bearer token or session cookie, checked before every /api route."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from api.same_origin import check_same_origin
from shared.domain.permissions import allows
from shared.errors import Forbidden, Unauthorized
from shared.plugin_token import load_plugin_token
from shared.sessions import Session, authenticate

#: Name of the HttpOnly session cookie set by POST /api/login.
SESSION_COOKIE = "aisopsflow_session"

View = TypeVar("View", bound=Callable[..., Any])


def public(view: View) -> View:
    """Mark a view as reachable without logging in (login, webhooks, health)."""
    view._public = True  # type: ignore[attr-defined]
    return view


def bearer_token() -> str | None:
    """The token from ``Authorization: Bearer``, if the request sends one."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def presented_token() -> str | None:
    """The token from ``Authorization: Bearer`` or, failing that, the session cookie."""
    return bearer_token() or request.cookies.get(SESSION_COOKIE) or None


def is_plugin_call() -> bool:
    """True when the request presents the shared plugin token (a plugin calling Core)."""
    token = presented_token() or ""
    return bool(token) and hmac.compare_digest(
        token.encode(), load_plugin_token(current_app.config["SETTINGS"]).encode()
    )


def plugin_only(view: View) -> View:
    """A view only plugins call: no login, but the plugin token, checked before the body is read.

    Put it right under ``@blp.route`` so it runs before argument parsing.
    """

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not is_plugin_call():
            raise Unauthorized(
                "this endpoint is for plugins: send Authorization: Bearer <plugin token>"
            )
        return view(*args, **kwargs)

    return public(guarded)  # type: ignore[arg-type]


def authenticate_request(view_function: Callable[..., Any] | None) -> None:
    """Set ``g.session`` for protected views; Unauthorized when no valid token is presented."""
    g.session = None
    if view_function is None or getattr(view_function, "_public", False):
        return
    token = presented_token()
    if not token:
        raise Unauthorized("authentication required: send Authorization: Bearer <token> or log in")
    g.session = authenticate(token)
    if bearer_token() is None:
        # Only the cookie can ride along with a request another site's page makes.
        check_same_origin(request, current_app.config["SETTINGS"].allowed_origins)


def current_session() -> Session:
    """The caller's session (only inside a protected view)."""
    return g.session


def tenant_id() -> str:
    """The caller's tenant: every query a view makes is filtered by it."""
    return g.session.user.tenant_id


def actor() -> str:
    """The caller as the audit log names them."""
    return g.session.user.email


def require(permission: str) -> Callable[[View], View]:
    """Refuse the view with 403 unless the caller's role grants ``permission``."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            role = g.session.user.role
            if not allows(role, permission):
                raise Forbidden(f"role {role!r} may not do this (needs {permission!r})")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
