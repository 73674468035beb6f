"""Webhook request authentication: HMAC signatures (GitHub, Slack, Stripe style) and shared tokens."""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import Unauthorized

#: Seconds a signed timestamp may differ from ``now`` before the request counts as a replay.
DEFAULT_TOLERANCE_SECONDS = 300
DEFAULT_ALGORITHM = "sha256"
#: What is signed when a timestamp header is configured: Slack's "v0" scheme.
DEFAULT_SIGNATURE_BASE = "v0:{timestamp}:{body}"

ALGORITHMS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
AUTH_TYPES = ("hmac", "token")

# Enough digits for any Unix time in seconds; longer values would only overflow float math.
_MAX_TIMESTAMP_DIGITS = 12


@dataclass(frozen=True)
class ReplayGuard:
    """What makes a verified request unique, and how long a copy of it would still verify.

    ``key`` is a SHA-256 hex digest of what was signed (the signature covers it, so a
    sender-chosen unsigned header cannot change it); a second request with the same
    key within ``window_seconds`` is a replay.
    """

    key: str
    window_seconds: int


class WebhookAuthFailure(Unauthorized):
    """A webhook request failed its auth check; ``reason`` is safe to store in the audit row."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook authentication failed: {reason}")
        self.reason = reason


def signature_base_problem(signature_base: str) -> str | None:
    """Why ``signature_base`` is unusable, or None when it only uses ``{timestamp}`` and ``{body}``.

    The workflow validator can call this to reject a bad configuration early.
    """
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(signature_base)
            if name is not None
        ]
    except ValueError as e:
        return f"signature_base {signature_base!r} is not a valid format string: {e}"
    for name, spec, conversion in fields:
        if name not in ("timestamp", "body") or spec or conversion:
            return (
                f"signature_base {signature_base!r} may only use {{timestamp}} and {{body}}, "
                f"not {{{name}}}"
            )
    return None


def verify_webhook(
    auth: Any,
    secret_value: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_seconds: float,
) -> ReplayGuard | None:
    """Check the request against ``auth``; raise :class:`WebhookAuthFailure` if it fails.

    Returns the request's :class:`ReplayGuard` where the scheme makes one possible:
    an HMAC over a timestamp (Slack, Stripe style) is unique per (timestamp, body)
    and verifies for ``tolerance_seconds`` either side of now; an HMAC over the body
    alone only with ``replay_window_seconds`` set. A shared token says nothing about
    the request, so it gets none.

    ``auth`` is a workflow trigger's auth block (attributes ``type``, ``header``,
    ``algorithm``, ``prefix``, ``timestamp_header``, ``tolerance_seconds``,
    ``signature_base``); ``secret_value`` is the plaintext of its secret; ``body`` is the
    raw request body exactly as received; ``now_seconds`` is Unix time in seconds.
    Header names are matched case-insensitively. Comparisons are constant-time.
    """
    # Fail closed: an empty secret would make an empty token, or an HMAC anyone can compute, pass.
    if not secret_value:
        raise WebhookAuthFailure("the configured secret is empty")
    lowered = {name.lower(): value for name, value in headers.items()}
    kind = getattr(auth, "type", None)
    if kind == "hmac":
        return _verify_hmac(auth, secret_value, lowered, body, now_seconds)
    if kind == "token":
        _verify_token(auth, secret_value, lowered)
        return None
    raise WebhookAuthFailure(f"unsupported auth type {kind!r}")


def _header(headers: dict[str, str], name: str | None) -> str:
    if not name:
        raise WebhookAuthFailure("no header is configured")
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise WebhookAuthFailure(f"missing header {name}")
    return value


def _verify_hmac(
    auth: Any, secret_value: str, headers: dict[str, str], body: bytes, now_seconds: float
) -> ReplayGuard | None:
    algorithm = getattr(auth, "algorithm", None) or DEFAULT_ALGORITHM
    digest = ALGORITHMS.get(algorithm)
    if digest is None:
        raise WebhookAuthFailure(f"unsupported algorithm {algorithm!r}")
    presented = _header(headers, getattr(auth, "header", None))
    message = body
    timestamp_header = getattr(auth, "timestamp_header", None)
    if timestamp_header:
        timestamp = _fresh_timestamp(auth, headers, timestamp_header, now_seconds)
        base = getattr(auth, "signature_base", None) or DEFAULT_SIGNATURE_BASE
        message = _signed_message(base, timestamp, body)
    prefix = getattr(auth, "prefix", None) or ""
    expected = prefix + hmac.new(secret_value.encode("utf-8"), message, digest).hexdigest()
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    if not hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8")):
        raise WebhookAuthFailure("signature mismatch")
    signed = hashlib.sha256(message).hexdigest()
    if timestamp_header:
        tolerance = getattr(auth, "tolerance_seconds", None) or DEFAULT_TOLERANCE_SECONDS
        # A copy verifies until its timestamp is tolerance seconds old, and the timestamp
        # may be up to tolerance seconds ahead of now: remember it for both.
        return ReplayGuard(signed, 2 * tolerance)
    window = getattr(auth, "replay_window_seconds", None)
    return ReplayGuard(signed, window) if window else None


def _fresh_timestamp(
    auth: Any, headers: dict[str, str], timestamp_header: str, now_seconds: float
) -> str:
    raw = _header(headers, timestamp_header)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_TIMESTAMP_DIGITS):
        raise WebhookAuthFailure(f"header {timestamp_header} is not an integer timestamp")
    tolerance = getattr(auth, "tolerance_seconds", None)
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE_SECONDS
    if abs(now_seconds - int(raw)) > tolerance:
        raise WebhookAuthFailure("stale timestamp")
    # The sender signed the header text, so that text (not a re-rendered int) goes in.
    return raw


def _signed_message(base: str, timestamp: str, body: bytes) -> bytes:
    problem = signature_base_problem(base)
    if problem:
        raise WebhookAuthFailure(problem)
    # Built piecewise so the body goes in as raw bytes, never decoded and re-encoded.
    parts: list[bytes] = []
    for literal, name, _, _ in string.Formatter().parse(base):
        parts.append(literal.encode("utf-8"))
        if name == "timestamp":
            parts.append(timestamp.encode("ascii"))
        elif name == "body":
            parts.append(body)
    return b"".join(parts)


def _verify_token(auth: Any, secret_value: str, headers: dict[str, str]) -> None:
    header = getattr(auth, "header", None)
    presented = _header(headers, header)
    if header.lower() == "authorization" and presented[:7].lower() == "bearer ":
        presented = presented[7:].strip()
    if not hmac.compare_digest(presented.encode("utf-8"), secret_value.encode("utf-8")):
        raise WebhookAuthFailure("token mismatch")
