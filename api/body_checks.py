"""Checks on the request that run before any view: URL and header text, body size, type, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from shared.domain.storable import (
    MAX_JSON_DEPTH,
    json_problem,
    string_problem,
    text_problem,
)
from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 1024 * 1024

JSON_TYPES = frozenset({"application/json"})
FORM_TYPE = "application/x-www-form-urlencoded"

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


def _read_body() -> bytes:
    """The whole body; a body the client framed wrongly (bad chunk sizes, cut short) is a 400."""
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:  # werkzeug's own 413 (over MAX_CONTENT_LENGTH) stands
        raise
    # What a broken body raises depends on the server (gunicorn's InvalidChunkSize is an
    # OSError, werkzeug's a ClientDisconnected); any of them is the client's doing.
    except Exception as error:  # noqa: BLE001
        raise BadRequest(
            f"request body could not be read ({type(error).__name__}); "
            "check its Content-Length or chunked framing"
        ) from None


def _check_streamed_size() -> None:
    """Werkzeug stops a length-less body at the limit without saying so; make that a 413."""
    raw = _read_body()
    if len(raw) >= MAX_BODY_BYTES and request.stream.read(1):
        raise PayloadTooLarge(f"request body is over the limit of {MAX_BODY_BYTES} bytes (1 MiB)")


def check_url_and_headers() -> None:
    """Refuse a NUL or unpaired surrogate in the path, a query parameter or a header (400).

    No text column can store one (PostgreSQL refuses ``\\x00``), so it is refused here,
    once, rather than failing as a database error deep inside a route.
    """
    problem = string_problem(request.path, "the URL path")
    for name, value in request.args.items(multi=True):
        problem = problem or string_problem(name + value, f"query parameter {name[:40]!r}")
    for name, value in request.headers.items():
        problem = problem or string_problem(value, f"header {name[:40]!r}")
    if problem:
        raise BadRequest(problem)


def _is_json(content_type: str) -> bool:
    return content_type in JSON_TYPES or content_type.endswith("+json")


def _json_value(raw: bytes) -> Any:
    """The decoded JSON body, or a 400 saying why it cannot be decoded."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        detail = f"{error.msg} at line {error.lineno} column {error.colno}"
    except UnicodeDecodeError:
        detail = "not UTF-8"
    except RecursionError:
        detail = f"nested over {MAX_JSON_DEPTH} levels deep"
    except ValueError:  # Python refuses to read integers this long (a CPU-time guard)
        detail = f"a number has over {sys.get_int_max_str_digits()} digits"
    raise BadRequest(f"request body is not valid JSON: {detail}") from None


def _check_text(raw: bytes, content_type: str) -> None:
    """Refuse JSON nested too deep, and a NUL character in any text the body carries."""
    problem: str | None = None
    if _is_json(content_type):
        problem = json_problem(_json_value(raw), "body")
    elif content_type == FORM_TYPE:
        pairs = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        for name, value in pairs:
            problem = problem or string_problem(name + value, f"form field {name[:40]!r}")
    else:
        problem = text_problem(raw.decode("utf-8", errors="replace"), "request body")
    if problem:
        raise BadRequest(problem)


def check_body(view_function: Callable[..., Any] | None) -> None:
    """Reject oversize bodies (413), foreign content types (415), broken JSON and NULs (400)."""
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
    _check_text(_read_body(), content_type)
