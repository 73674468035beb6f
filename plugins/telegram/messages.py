"""What the bot says: the message text (HTML), the approval keyboard, the decision line. Pure."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from plugins.telegram.callback_data import CallbackKeys, encode

#: Telegram's limit on a message's text after entity parsing, in characters.
MAX_TEXT = 4096
#: Room kept for the title, the severity line and the decision appended later.
MESSAGE_BUDGET = 3500
SEVERITY_MARKS = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


def message_text(title: str, severity: str, message: str) -> str:
    """HTML for ``parse_mode=HTML``: bold title, severity, then the message, all escaped."""
    if len(message) > MESSAGE_BUDGET:
        message = message[: MESSAGE_BUDGET - 1] + "…"
    mark = SEVERITY_MARKS.get(severity, "")
    lines = [f"<b>{html.escape(title)}</b>"] if title else []
    lines.append(f"{mark} Severity: {html.escape(severity)}".strip())
    lines += ["", html.escape(message)]
    return "\n".join(lines)


def approval_keyboard(execution_id: str, step_id: str, keys: CallbackKeys) -> dict[str, Any]:
    """``reply_markup`` with one row: Approve, Reject."""
    return {
        "inline_keyboard": [
            [
                {
                    "text": "Approve",
                    "callback_data": encode("approve", execution_id, step_id, keys),
                },
                {"text": "Reject", "callback_data": encode("reject", execution_id, step_id, keys)},
            ]
        ]
    }


def person(user: dict[str, Any]) -> str:
    """A Telegram user as people read it: ``Ada Lovelace (@ada, id 777)``."""
    name = " ".join(str(user[key]) for key in ("first_name", "last_name") if user.get(key))
    handle = f"@{user['username']}, " if user.get("username") else ""
    return f"{name or 'someone'} ({handle}id {user.get('id')})"


def decision_line(status: str, user: dict[str, Any], at: datetime) -> str:
    """``✅ Approved by Ada (id 777) at 2024-05-01 12:00 UTC`` (``at`` in UTC)."""
    mark, word = ("✅", "Approved") if status == "approved" else ("❌", "Rejected")
    return f"{mark} {word} by {person(user)} at {at:%Y-%m-%d %H:%M} UTC"


def decided_text(message: dict[str, Any], line: str) -> dict[str, Any] | None:
    """``editMessageText`` fields: the original text and entities, then ``line``.

    None when the original has no text or the result would be too long; the caller then
    only removes the buttons.
    """
    text = message.get("text")
    if not text or len(text) + len(line) + 2 > MAX_TEXT:
        return None
    # Appending keeps the original entities' UTF-16 offsets valid, so the title stays bold.
    fields: dict[str, Any] = {"text": f"{text}\n\n{line}"}
    if message.get("entities"):
        fields["entities"] = message["entities"]
    return fields
