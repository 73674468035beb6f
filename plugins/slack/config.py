"""The Slack plugin's settings, read from the environment when the app is built."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import SettingsError

PREFIX = "AISOPSFLOW_SLACK_"
API_URL = PREFIX + "API_URL"
BOT_TOKEN = PREFIX + "BOT_TOKEN"
SIGNING_SECRET = PREFIX + "SIGNING_SECRET"  # noqa: S105 - a variable name, not a secret
#: Slack's public Web API; slack_sdk joins method names to it, so it ends with "/".
DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class SlackConfig:
    """Where the Slack Web API is, the bot token that posts, and the secret Slack signs with."""

    api_url: str = DEFAULT_API_URL
    bot_token: str = ""
    signing_secret: str = ""

    def missing(self) -> str | None:
        """What keeps the plugin from working (names the unset variables), or None."""
        unset = [
            name
            for name, value in ((BOT_TOKEN, self.bot_token), (SIGNING_SECRET, self.signing_secret))
            if not value
        ]
        if not unset:
            return None
        return f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set"


def load_slack_config(environ: Mapping[str, str] | None = None) -> SlackConfig:
    """Validated settings from ``environ`` (default: the process environment).

    Unset token and secret are allowed (the probe reports them); malformed values raise
    SettingsError with one line per bad variable.
    """
    env = os.environ if environ is None else environ
    api_url = env.get(API_URL, "").strip() or DEFAULT_API_URL
    bot_token = env.get(BOT_TOKEN, "").strip()
    signing_secret = env.get(SIGNING_SECRET, "").strip()
    problems = []
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", api_url):
        problems.append(f"{API_URL}={api_url!r}: expected an http(s):// URL")
    if bot_token and not re.fullmatch(r"xox[a-z]-\S+", bot_token):
        problems.append(f"{BOT_TOKEN}: expected a Slack token such as xoxb-..., without spaces")
    if signing_secret and re.search(r"\s", signing_secret):
        problems.append(f"{SIGNING_SECRET}: expected the app's signing secret, without spaces")
    if problems:
        raise SettingsError("\n".join(problems))
    return SlackConfig(
        api_url=api_url if api_url.endswith("/") else api_url + "/",
        bot_token=bot_token,
        signing_secret=signing_secret,
    )
