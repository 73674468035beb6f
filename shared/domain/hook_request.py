"""An incoming webhook request turned into the ``body``, ``headers`` and ``query`` templates see."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from shared.errors import BadRequest
from shared.redaction import SENSITIVE_KEY

FORM_TYPE = "application/x-www-form-urlencoded"
#: Header names an execution never keeps, whatever their value.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-slack-signature",
    }
)
# Beyond the redaction patterns (token, secret, signature, api-key, ...): Shopify-style
# "X-...-Hmac-Sha256" headers carry a signature without saying so.
_EXTRA_SENSITIVE_PARTS = ("hmac",)


class HookRequestError(BadRequest):
    """The webhook body does not match its declared content type; the message says where."""


@dataclass(frozen=True)
class HookRequest:
    """A parsed webhook request: ``body`` decoded by content type, header names lower-case."""

    body: Any
    headers: dict[str, str]
    query: dict[str, str | list[str]]
    raw_body: bytes
    content_type: str


def parse_hook_request(
    raw_body: bytes,
    content_type: str,
    headers: Mapping[str, str],
    query_pairs: Iterable[tuple[str, str]],
) -> HookRequest:
    """Decode a webhook request for templating; raise :class:`HookRequestError` on bad JSON.

    ``body`` is the decoded JSON for ``application/json`` and ``*/*+json`` (None when the
    body is empty), a dict for form-encoded bodies (a repeated key gives a list), and
    otherwise the body as UTF-8 text with undecodable bytes replaced. ``content_type`` is
    kept as given; ``query_pairs`` are the query string's (name, value) pairs in order.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        body = _json_body(raw_body)
    elif media_type == FORM_TYPE:
        text = raw_body.decode("utf-8", errors="replace")
        body = _group(parse_qsl(text, keep_blank_values=True))
    else:
        body = raw_body.decode("utf-8", errors="replace")
    return HookRequest(
        body=body,
        headers=_lower_headers(headers),
        query=_group(query_pairs),
        raw_body=raw_body,
        content_type=content_type,
    )


def stored_headers(headers: Mapping[str, str], *, drop: Iterable[str] = ()) -> dict[str, str]:
    """What an execution keeps of the request headers: names lower-cased, credentials removed.

    Removed: :data:`SENSITIVE_HEADERS`, any name that looks like it carries a token,
    secret, signature, API key or password, and the names in ``drop`` (any case).
    """
    dropped = {name.lower() for name in drop}
    return {
        name: value
        for name, value in _lower_headers(headers).items()
        if name not in dropped and not _is_sensitive(name)
    }


def _is_sensitive(name: str) -> bool:
    return (
        name in SENSITIVE_HEADERS
        or SENSITIVE_KEY.search(name) is not None
        or any(part in name for part in _EXTRA_SENSITIVE_PARTS)
    )


def _json_body(raw_body: bytes) -> Any:
    # Some senders (pings, health checks) declare JSON and send nothing; that is "no body".
    if not raw_body.strip():
        return None
    try:
        return json.loads(raw_body)
    except json.JSONDecodeError as e:
        raise HookRequestError(
            f"request body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno} "
            f"(char {e.pos}); send valid JSON or change the Content-Type"
        ) from e
    except UnicodeDecodeError as e:
        raise HookRequestError(
            f"request body is not valid JSON: undecodable byte at position {e.start}; "
            "JSON must be UTF-8, UTF-16 or UTF-32"
        ) from e
    except RecursionError as e:
        # Deeply nested arrays exhaust the parser's stack; refuse rather than crash.
        raise HookRequestError("request body is not acceptable JSON: nested too deeply") from e


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        # A repeated header is one comma-separated list (RFC 9110 §5.3).
        lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
    return lowered


def _group(pairs: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    grouped: dict[str, str | list[str]] = {}
    for name, value in pairs:
        if name not in grouped:
            grouped[name] = value
            continue
        previous = grouped[name]
        grouped[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return grouped
