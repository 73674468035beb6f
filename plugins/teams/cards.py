"""The MessageCard a Teams incoming webhook shows. Pure.

MessageCard (``@type: MessageCard``) is what Office 365 connector webhooks render,
including ``potentialAction`` buttons; Adaptive Cards need the Workflows webhooks.
"""

from __future__ import annotations

from typing import Any

#: Card accent colour per severity (hex RGB, no '#').
THEME_COLORS = {"info": "0078D7", "warning": "FFA500", "critical": "D13438"}


def message_card(
    title: str, message: str, severity: str, approval: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A MessageCard; an approval with ``approve_url`` / ``reject_url`` gets two OpenUri actions."""
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": THEME_COLORS.get(severity, THEME_COLORS["info"]),
        "summary": title or message[:80] or "AisOpsFlow",
        "title": title or "AisOpsFlow",
        "text": message,
        "sections": [{"facts": [{"name": "Severity", "value": severity}]}],
    }
    if approval:
        facts = card["sections"][0]["facts"]
        facts += [
            {"name": name, "value": str(approval[key])}
            for name, key in (("Execution", "execution_id"), ("Step", "step_id"))
            if approval.get(key)
        ]
        actions = [
            {"@type": "OpenUri", "name": name, "targets": [{"os": "default", "uri": approval[key]}]}
            for name, key in (("Approve", "approve_url"), ("Reject", "reject_url"))
            if isinstance(approval.get(key), str) and approval[key]
        ]
        if actions:
            card["potentialAction"] = actions
    return card
