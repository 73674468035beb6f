"""Block Kit for AisOpsFlow messages: severity, Approve / Reject buttons, the decision. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

APPROVE_ACTION = "aisopsflow_approve"
REJECT_ACTION = "aisopsflow_reject"
#: block_id of the buttons, so a decided message can drop exactly them.
ACTIONS_BLOCK_ID = "aisopsflow_approval"
SEVERITY_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
#: Block Kit limits, in characters.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FALLBACK_LIMIT = 4000


@dataclass(frozen=True)
class ButtonValue:
    """What an Approve / Reject button carries back: the approval and the decision."""

    execution_id: str
    step_id: str
    decision: str


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Slack mrkdwn escaping, so message text cannot ping ``<!channel>`` or fake links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def button_value(execution_id: str, step_id: str, decision: str) -> str:
    """The JSON a button carries: ``{"execution_id", "step_id", "decision"}``."""
    return json.dumps(
        {"execution_id": execution_id, "step_id": step_id, "decision": decision},
        separators=(",", ":"),
    )


def parse_button_value(text: str) -> ButtonValue:
    """The button's value back; ValueError when it is not one of ours."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a button value must be a JSON object")
    fields = [value.get(key) for key in ("execution_id", "step_id", "decision")]
    if not all(isinstance(item, str) and item for item in fields):
        raise ValueError("a button value needs execution_id, step_id and decision")
    if fields[2] not in ("approve", "reject"):
        raise ValueError(f"decision {fields[2]!r}: expected approve or reject")
    return ButtonValue(*fields)


def approval_actions(execution_id: str, step_id: str) -> dict[str, Any]:
    """The actions block with the Approve (primary) and Reject (danger) buttons."""
    buttons = [
        (APPROVE_ACTION, "Approve", "primary", "approve"),
        (REJECT_ACTION, "Reject", "danger", "reject"),
    ]
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [
            {
                "type": "button",
                "action_id": action_id,
                "text": {"type": "plain_text", "text": label},
                "style": style,
                "value": button_value(execution_id, step_id, decision),
            }
            for action_id, label, style, decision in buttons
        ],
    }


def message_blocks(payload: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the blocks of a ``/send`` payload (validated by the caller)."""
    severity = payload.get("severity") or "info"
    emoji = SEVERITY_EMOJI.get(severity, SEVERITY_EMOJI["info"])
    title = payload.get("title") or "AisOpsFlow"
    message = payload.get("message") or ""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{emoji} {title}", HEADER_LIMIT)},
        },
    ]
    if message:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(escape(message), SECTION_LIMIT)},
            }
        )
    context = [f"{emoji} *{severity}*"]
    if payload.get("execution_id"):
        context.append(f"execution `{escape(payload['execution_id'])}`")
    if payload.get("step_id"):
        context.append(f"step `{escape(payload['step_id'])}`")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    approval = payload.get("approval")
    if approval:
        blocks.append(approval_actions(approval["execution_id"], approval["step_id"]))
    fallback = f"[{severity}] {title}" + (f": {message}" if message else "")
    return _clip(fallback, FALLBACK_LIMIT), blocks


def decision_line(status: str, decision: str, user_id: str, decided_at: datetime) -> str:
    """E.g. "Approved by <@U123> at 2026-11-26 12:00 UTC"; ``decided_at`` is in UTC."""
    when = decided_at.strftime("%Y-%m-%d %H:%M UTC")
    if status == "approved":
        return f":white_check_mark: Approved by <@{user_id}> at {when}"
    if status == "rejected":
        return f":x: Rejected by <@{user_id}> at {when}"
    verb = "Approval" if decision == "approve" else "Rejection"
    return (
        f":hourglass_flowing_sand: {verb} by <@{user_id}> recorded at {when}; more approvals needed"
    )


def decided_blocks(
    original: list[dict[str, Any]], line: str, *, keep_buttons: bool
) -> list[dict[str, Any]]:
    """The original blocks plus the decision line; the buttons go once the approval is over."""
    blocks = [
        block for block in original if keep_buttons or block.get("block_id") != ACTIONS_BLOCK_ID
    ]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    return blocks
