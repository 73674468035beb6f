"""The CSRF guard: a write authenticated by the session cookie must come from our own pages.

A browser attaches the cookie to any request, whoever's page sends it; it does not
attach a bearer token. So an unsafe method carrying only the cookie must show an
``Origin`` (or, failing that, a ``Referer``) of this API's own origin. The cookie's
``SameSite=Strict`` already stops most cross-site sends; this stops the rest (a
sibling subdomain is "same site", older browsers ignore the attribute).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Request

from shared.errors import Forbidden

#: Methods that change nothing, so a cross-site one cannot hurt.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin_of(url: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an http(s) ``url``, lower-cased, default port dropped; else None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return parts.scheme, _without_default_port(parts.scheme, parts.netloc.lower())


def _without_default_port(scheme: str, netloc: str) -> str:
    default = ":443" if scheme == "https" else ":80"
    return netloc.removesuffix(default)


def check_same_origin(request: Request, allowed_origins: str) -> None:
    """Raise Forbidden unless ``request`` is safe or comes from the API's own origin.

    Own origin: the host the request was sent to (its ``Host`` header; the scheme
    is not compared, since a TLS proxy in front speaks plain HTTP to us), or one of
    ``allowed_origins`` (comma-separated ``scheme://host[:port]``).
    """
    if request.method in SAFE_METHODS:
        return
    claimed = request.headers.get("Origin") or request.headers.get("Referer") or ""
    source = _origin_of(claimed)
    if source is None:
        raise Forbidden(
            "a write with the session cookie must come from this API's own pages: the "
            "request has no usable Origin or Referer header (scripts should send "
            "Authorization: Bearer <token> instead of the cookie)"
        )
    scheme, netloc = source
    if netloc == _without_default_port(scheme, request.host.lower()):
        return
    listed = {_origin_of(origin) for origin in allowed_origins.split(",") if origin.strip()}
    if source in listed:
        return
    raise Forbidden(
        f"a write with the session cookie must come from this API's own pages, not from "
        f"{scheme}://{netloc}; list that origin in AISOPSFLOW_ALLOWED_ORIGINS if it serves "
        f"a trusted UI"
    )
