"""``POST /slack/interactions``: a signed Approve / Reject click becomes a decision in Core."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

import requests
from flask import Response, jsonify
from slack_sdk.signature import SignatureVerifier

from plugins.base import error_response
from plugins.slack.blocks import (
    APPROVE_ACTION,
    REJECT_ACTION,
    decided_blocks,
    decision_line,
    parse_button_value,
)
from plugins.slack.channel import SlackChannel
from plugins.slack.config import SIGNING_SECRET
from plugins.slack.core import CoreAnswer, CoreClient
from shared.errors import ChannelError

PATH = "/slack/interactions"
#: How long posting the refusal to Slack's response_url may take, in milliseconds.
RESPONSE_URL_TIMEOUT_MS = 2000
NOT_ALLOWED = "You are not allowed to decide this approval."

log = logging.getLogger(__name__)
Answer = tuple[Response | str, int]


def _decided_at(answer: CoreAnswer, actor: str) -> datetime:
    """When Core recorded ``actor``'s decision (UTC); now if Core did not say."""
    for row in reversed(answer.body.get("decisions") or []):
        if row.get("actor") == actor and row.get("decided_at"):
            moment = datetime.fromisoformat(row["decided_at"])
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def refusal_text(answer: CoreAnswer) -> str:
    """What the clicking user alone is told when Core did not take the decision."""
    if answer.status == 403:
        return NOT_ALLOWED
    if answer.status == 409:
        return answer.message
    if answer.status == 404:
        return f"This approval no longer exists: {answer.message}"
    return f"AisOpsFlow could not record your decision ({answer.message}); please try again."


class InteractionHandler:
    """Verifies Slack's signature, resolves the approval in Core, then updates the message."""

    def __init__(
        self,
        signing_secret: str,
        core: CoreClient,
        channel: SlackChannel,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.core = core
        self.channel = channel
        self.session = session or requests.Session()

    def handle(self, raw: bytes, headers: Mapping[str, str]) -> Answer:
        """The answer to one interaction request (``raw``: the body exactly as received)."""
        if self.verifier is None:
            return error_response(
                503, "not_configured", f"{SIGNING_SECRET} is not set: cannot verify Slack requests"
            )
        try:
            valid = self.verifier.is_valid_request(raw, dict(headers))
        except ValueError:  # a timestamp that is not a number
            valid = False
        if not valid:
            return error_response(
                401,
                "invalid_signature",
                "X-Slack-Signature does not match or X-Slack-Request-Timestamp is over 5 minutes off",
            )
        try:
            payload = json.loads(parse_qs(raw.decode("utf-8"))["payload"][0])
        except (KeyError, ValueError) as error:
            return error_response(
                400, "bad_request", f"expected a form field 'payload' with JSON: {error}"
            )
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return "", 200  # other interaction types are not ours; acknowledge them
        actions = [
            action
            for action in payload.get("actions") or []
            if action.get("action_id") in (APPROVE_ACTION, REJECT_ACTION)
        ]
        if not actions:
            return "", 200
        try:
            value = parse_button_value(actions[0].get("value") or "")
            user_id = str(payload["user"]["id"])
        except (KeyError, TypeError, ValueError) as error:
            return error_response(400, "bad_request", f"not an AisOpsFlow approval button: {error}")
        answer = self.core.resolve(value.execution_id, value.step_id, value.decision, user_id)
        if answer.status != 200:
            return self._refuse(payload, answer)
        self._show_decision(payload, answer, user_id, value.decision)
        return "", 200

    def _refuse(self, payload: dict[str, Any], answer: CoreAnswer) -> Answer:
        """Tell only the clicking user; the message stays as it is."""
        if answer.status not in (403, 404, 409):
            log.warning("slack interaction: resolving in Core failed: %s", answer.message)
        body = {
            "response_type": "ephemeral",
            "replace_original": False,
            "text": refusal_text(answer),
        }
        # Slack ignores the body of a block_actions answer; its response_url shows the text.
        if payload.get("response_url"):
            try:
                self.session.post(
                    payload["response_url"], json=body, timeout=RESPONSE_URL_TIMEOUT_MS / 1000
                )
            except requests.RequestException as error:
                log.warning("slack interaction: response_url failed: %s", error)
        return jsonify(body), 200

    def _show_decision(
        self, payload: dict[str, Any], answer: CoreAnswer, user_id: str, decision: str
    ) -> None:
        """Rewrite the original message: who decided and when; buttons gone once decided."""
        message = payload.get("message") or {}
        container = payload.get("container") or {}
        channel_id = (payload.get("channel") or {}).get("id") or container.get("channel_id")
        ts = message.get("ts") or container.get("message_ts")
        if not channel_id or not ts:
            log.warning("slack interaction: no channel/message to update")
            return
        status = str(answer.body.get("status") or "")
        line = decision_line(status, decision, user_id, _decided_at(answer, f"slack:{user_id}"))
        blocks = decided_blocks(message.get("blocks") or [], line, keep_buttons=status == "pending")
        text = f"{message.get('text') or 'AisOpsFlow approval'} — {line}"
        try:
            self.channel.update(channel_id, ts, text, blocks)
        except ChannelError as error:
            log.warning("slack interaction: the decision is recorded but %s", error.message)
