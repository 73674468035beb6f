"""A pressed Approve / Reject button: resolve the approval in Core, then answer in Telegram."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests

from plugins.telegram.bot_api import BotApi
from plugins.telegram.callback_data import CallbackKeys, decode
from plugins.telegram.messages import decided_text, decision_line
from shared.errors import ChannelError

#: How long to wait for Core to accept a connection and to answer, in milliseconds.
CORE_TIMEOUT_MS = (3000, 10_000)
#: Telegram shows at most 200 characters of an answerCallbackQuery text.
MAX_ANSWER = 200

log = logging.getLogger("plugins.telegram")


@dataclass(frozen=True)
class CoreAnswer:
    """Core's answer to a resolve call: HTTP status (0: no answer) and JSON body."""

    status: int
    body: dict[str, Any]


class CoreClient:
    """Calls ``POST {core}/api/approvals/{execution}/{step}/resolve`` with the plugin token."""

    def __init__(self, core_url: str, plugin_token: str) -> None:
        self.core_url = core_url.rstrip("/")
        self.plugin_token = plugin_token
        self.session = requests.Session()

    def resolve(self, execution_id: str, step_id: str, decision: str, actor: str) -> CoreAnswer:
        url = f"{self.core_url}/api/approvals/{execution_id}/{step_id}/resolve"
        body = {"decision": decision, "comment": "", "actor": actor, "channel": "telegram"}
        timeout = tuple(ms / 1000 for ms in CORE_TIMEOUT_MS)
        try:
            response = self.session.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.plugin_token}"},
                timeout=timeout,
            )
        except requests.RequestException as error:
            log.warning("Core at %s did not answer: %s", self.core_url, type(error).__name__)
            return CoreAnswer(0, {})
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        return CoreAnswer(response.status_code, answer if isinstance(answer, dict) else {})


def _refusal(answer: CoreAnswer) -> str:
    """What the person who pressed the button reads when Core did not take the decision."""
    if answer.status == 403:
        return "Not allowed: you are not among the approvers of this step."
    if answer.status == 409:
        return answer.body.get("message") or "This approval was already decided."
    if answer.status == 404:
        return "This approval no longer exists."
    shown = f"HTTP {answer.status}" if answer.status else "no answer"
    return f"AisOpsFlow could not record your decision ({shown}); try again."


def _answer(bot: BotApi, query_id: str, text: str, *, alert: bool = False) -> None:
    bot.call(
        "answerCallbackQuery",
        {"callback_query_id": query_id, "text": text[:MAX_ANSWER], "show_alert": alert},
    )


def _close(bot: BotApi, message: dict[str, Any], line: str | None) -> None:
    """Remove the buttons of ``message``, appending ``line`` (who decided) when given."""
    chat = (message.get("chat") or {}).get("id")
    if chat is None or "message_id" not in message:
        return  # too old for Telegram to include; nothing to edit
    if line is None and not message.get("reply_markup"):
        return  # no buttons left: Telegram would refuse "message is not modified"
    where = {"chat_id": chat, "message_id": message["message_id"]}
    no_buttons = {"inline_keyboard": []}
    fields = decided_text(message, line) if line else None
    if fields:
        bot.call("editMessageText", {**where, **fields, "reply_markup": no_buttons})
    else:
        bot.call("editMessageReplyMarkup", {**where, "reply_markup": no_buttons})


def handle_update(
    update: dict[str, Any], *, bot: BotApi, core: CoreClient, keys: CallbackKeys
) -> None:
    """Act on a ``callback_query`` update; other updates are ignored."""
    query = update.get("callback_query")
    if not isinstance(query, dict) or not query.get("id"):
        return
    user = query.get("from") or {}
    message = query.get("message") or {}
    decoded = decode(str(query.get("data") or ""), keys)
    try:
        if decoded is None:
            _answer(bot, query["id"], "This button has expired; decide in AisOpsFlow.", alert=True)
            return
        decision, execution_id, step_id = decoded
        answer = core.resolve(execution_id, step_id, decision, str(user.get("id", "")))
        status = answer.body.get("status")
        if answer.status != 200:
            _answer(bot, query["id"], _refusal(answer), alert=True)
            if answer.status in (404, 409):
                _close(bot, message, None)
        elif status in ("approved", "rejected"):
            _answer(bot, query["id"], status.capitalize())
            _close(bot, message, decision_line(status, user, datetime.now(timezone.utc)))
        else:
            _answer(bot, query["id"], "Recorded; waiting for more approvals.")
    except ChannelError as error:
        # Telegram must still get its 200, or it redelivers the update for hours.
        log.warning("could not answer a button press in Telegram: %s", error.message)
