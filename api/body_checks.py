"""Checks on the request body that run before any view: size, content type, JSON syntax."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 1024 * 1024

JSON_TYPES = frozenset({"application/json"})

View = TypeVar("View", bound=Callable[..., Any])


#: Marker for views that take a body of any content type (webhooks).
ANY_TYPE = "*/*"


def accepts(*content_types: str) -> Callable[[View], View]:
    """Declare the body content types a view takes (default: application/json; ANY_TYPE for all)."""

    def decorate(view: View) -> View:
        view._accepts = frozenset(content_types)  # type: ignore[attr-defined]
        return view

    return decorate


def handler_for(view_function: Callable[..., Any] | None, method: str) -> Callable[..., Any] | None:
    """The function that will handle the request: the view, or a MethodView's method."""
    view_class = getattr(view_function, "view_class", None)
    if view_class is not None:
        return getattr(view_class, method.lower(), None)
    return view_function


def _check_streamed_size() -> None:
    """Werkzeug stops a length-less body at the limit without saying so; make that a 413."""
    raw = request.get_data(cache=True)
    if len(raw) >= MAX_BODY_BYTES and request.stream.read(1):
        raise PayloadTooLarge(f"request body is over the limit of {MAX_BODY_BYTES} bytes (1 MiB)")


def check_body(view_function: Callable[..., Any] | None) -> None:
    """Reject oversize bodies (413), foreign content types (415) and broken JSON (400)."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"request body is {length} bytes; the limit is {MAX_BODY_BYTES} bytes (1 MiB)"
        )
    if request.method not in ("POST", "PUT", "PATCH") or view_function is None:
        return
    chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    if not (length or chunked):
        return
    if chunked:
        _check_streamed_size()
    accepted = getattr(view_function, "_accepts", JSON_TYPES)
    content_type = (request.mimetype or "").lower()
    if content_type not in accepted and ANY_TYPE not in accepted:
        raise UnsupportedMediaType(
            f"content type {content_type or '(none)'!r} is not accepted here; send {', '.join(sorted(accepted))}"
        )
    if content_type in JSON_TYPES:
        raw = request.get_data(cache=True)
        try:
            json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            detail = (
                f"{error.msg} at line {error.lineno} column {error.colno}"
                if isinstance(error, json.JSONDecodeError)
                else "not UTF-8"
            )
            raise BadRequest(f"request body is not valid JSON: {detail}") from None
