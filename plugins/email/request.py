"""The ``POST /send`` body as the Email plugin reads it (docs/plugins.md); no I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from plugins.email.config import is_email_address
from shared.errors import ChannelError

SEVERITIES = ("info", "warning", "critical")
#: Longest subject line, in characters; longer titles are cut with an ellipsis.
MAX_SUBJECT_CHARS = 200


def _invalid(message: str) -> ChannelError:
    # A malformed request fails the same way on every retry.
    return ChannelError(f"email: {message}", retryable=False)


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(f"{key!r} must be a string, got {type(value).__name__}")
    return value.strip()


def _link(approval: Mapping[str, Any], key: str) -> str:
    url = approval.get(key)
    parts = urlsplit(url) if isinstance(url, str) else None
    # Only web links: anything else (javascript:, data:) must never become a button.
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(f"approval.{key} must be an http(s) URL, got {url!r}")
    return url


@dataclass(frozen=True)
class ApprovalLinks:
    """The two signed, single-use links Core made for one pending approval."""

    approve_url: str
    reject_url: str


@dataclass(frozen=True)
class EmailRequest:
    """One message to one address, with the approval links when it asks for a decision."""

    target: str
    title: str
    message: str
    severity: str = ""
    approval: ApprovalLinks | None = None
    #: The message asks for a decision (with or without links).
    asks_approval: bool = False

    @classmethod
    def from_payload(cls, payload: Any) -> EmailRequest:
        """Read a ``/send`` body; ChannelError (not retryable) says what is wrong with it."""
        if not isinstance(payload, Mapping):
            raise _invalid("the request body must be a JSON object")
        target = _text(payload, "target")
        if target.lower().startswith("email:"):
            target = target[len("email:") :].strip()
        if not is_email_address(target):
            raise _invalid(f"target {target!r} is not an email address like ops@example.com")
        severity = _text(payload, "severity").lower()
        if severity and severity not in SEVERITIES:
            raise _invalid(f"severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
        approval = payload.get("approval")
        if approval is not None and not isinstance(approval, Mapping):
            raise _invalid("'approval' must be an object with approve_url and reject_url")
        links = None
        # Core leaves the links out when it cannot sign them (an approval that never
        # expires); the message then goes out without buttons rather than not at all.
        if approval and (approval.get("approve_url") or approval.get("reject_url")):
            links = ApprovalLinks(_link(approval, "approve_url"), _link(approval, "reject_url"))
        message, title = _text(payload, "message"), _text(payload, "title")
        if not message and not title:
            raise _invalid("nothing to send: both 'title' and 'message' are empty")
        return cls(target, title, message, severity, links, approval is not None)

    @property
    def subject(self) -> str:
        """``[SEVERITY] title`` on one line; the message's first line when there is no title."""
        lines = (self.message or "").splitlines()
        fallback = "Approval requested" if self.asks_approval else (lines[0] if lines else "")
        subject = " ".join((self.title or fallback).split())
        if len(subject) > MAX_SUBJECT_CHARS:
            subject = subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
        return f"[{self.severity.upper()}] {subject}" if self.severity else subject
