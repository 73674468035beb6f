"""The Teams plugin's settings: the base URL ``teams:<suffix>`` targets are joined to."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import SettingsError

BASE_URL = "AISOPSFLOW_TEAMS_BASE_URL"
_HTTP_URL = re.compile(r"https?://[^/\s]+\S*")


@dataclass(frozen=True)
class TeamsConfig:
    """Where suffix targets live; full webhook URLs need no configuration."""

    base_url: str = ""

    def is_full_url(self, target: str) -> bool:
        """True when ``target`` is a whole webhook URL (the sender chose the host), not a suffix."""
        return _HTTP_URL.fullmatch(target.strip()) is not None

    def webhook_url(self, target: str) -> str:
        """The incoming-webhook URL of a target: a full http(s) URL, or a suffix of the base.

        ValueError when the target is a suffix and no base URL is configured.
        """
        target = target.strip()
        if self.is_full_url(target):
            return target
        if not target or any(char.isspace() for char in target):
            raise ValueError(f"teams target {target!r}: expected a webhook URL or a suffix")
        if not self.base_url:
            raise ValueError(
                f"teams target {target!r} is a suffix, but {BASE_URL} is not set; "
                "set it or give the full https:// webhook URL"
            )
        return f"{self.base_url}/{target.lstrip('/')}"


def load_config(environ: Mapping[str, str] | None = None) -> TeamsConfig:
    """Validated settings from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    base_url = env.get(BASE_URL, "").strip().rstrip("/")
    if base_url and not _HTTP_URL.fullmatch(base_url):
        raise SettingsError(f"{BASE_URL}={base_url!r}: expected an http(s):// URL")
    return TeamsConfig(base_url=base_url)
