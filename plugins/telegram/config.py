"""The Telegram plugin's settings, read once from ``AISOPSFLOW_TELEGRAM_*`` at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import SettingsError

API_URL = "AISOPSFLOW_TELEGRAM_API_URL"
BOT_TOKEN = "AISOPSFLOW_TELEGRAM_BOT_TOKEN"  # noqa: S105 - a variable name, not a secret
WEBHOOK_SECRET = "AISOPSFLOW_TELEGRAM_WEBHOOK_SECRET"  # noqa: S105 - a variable name
ALIASES = "AISOPSFLOW_TELEGRAM_ALIASES"

DEFAULT_API_URL = "https://api.telegram.org"
#: A chat Telegram can address: a numeric chat id (groups are negative) or ``@channelusername``.
CHAT = re.compile(r"-?[0-9]+|@[A-Za-z0-9_]{1,64}")
#: Telegram's own rule for ``secret_token``: 1-256 of A-Z, a-z, 0-9, '_' and '-'.
SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class TelegramConfig:
    """Where the Bot API is, the bot's token, the webhook secret and the chat aliases."""

    api_url: str = DEFAULT_API_URL
    bot_token: str = ""
    webhook_secret: str = ""
    aliases: Mapping[str, str] = field(default_factory=dict)

    def problem(self) -> str | None:
        """What keeps the plugin from sending, for ``POST /probe``; None when it can."""
        if not self.bot_token:
            return f"{BOT_TOKEN} is not set"
        return None

    def chat_id(self, target: str) -> str | int:
        """The Bot API ``chat_id`` of a target: an alias, a numeric id or ``@channel``.

        ValueError naming the target when it is none of these.
        """
        chat = self.aliases.get(target, target)
        if not CHAT.fullmatch(chat):
            raise ValueError(
                f"telegram target {target!r} is not a chat id, @channel or alias; "
                f"configure aliases in {ALIASES} (alias=chat_id,...)"
            )
        return int(chat) if chat.lstrip("-").isdigit() else chat


def parse_aliases(raw: str) -> dict[str, str]:
    """``ops=-1001234,oncall=@oncall`` -> {"ops": "-1001234", "oncall": "@oncall"}."""
    aliases: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        alias, sep, chat = (part.strip() for part in item.partition("="))
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", alias) or not CHAT.fullmatch(chat):
            raise SettingsError(
                f"{ALIASES}: expected alias=chat_id pairs separated by commas "
                f"(chat_id numeric or @channel), got {item!r}"
            )
        aliases[alias] = chat
    return aliases


def load_config(environ: Mapping[str, str] | None = None) -> TelegramConfig:
    """Validated settings from ``environ`` (default: the process environment).

    SettingsError names the first bad variable. A missing bot token is not an error
    here: the plugin starts, and its probe reports it.
    """
    env = os.environ if environ is None else environ
    api_url = env.get(API_URL, "").strip().rstrip("/") or DEFAULT_API_URL
    if not re.match(r"^https?://[^/\s]+", api_url):
        raise SettingsError(f"{API_URL}={api_url!r}: expected an http(s):// URL")
    secret = env.get(WEBHOOK_SECRET, "").strip()
    if secret and not SECRET.fullmatch(secret):
        raise SettingsError(
            f"{WEBHOOK_SECRET}: expected 1-256 characters of A-Z, a-z, 0-9, '_' and '-' "
            "(Telegram's rule for secret_token)"
        )
    return TelegramConfig(
        api_url=api_url,
        bot_token=env.get(BOT_TOKEN, "").strip(),
        webhook_secret=secret,
        aliases=parse_aliases(env.get(ALIASES, "")),
    )
