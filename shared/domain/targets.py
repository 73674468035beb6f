"""Notify targets: which channel plugin a target goes to, and a recipient's addresses. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import ValidationError


@dataclass(frozen=True)
class Target:
    """A direct target: the plugin that delivers it and the address within that channel."""

    plugin: str
    address: str

    def __str__(self) -> str:
        return f"{self.plugin}:{self.address}"


#: Prefix of a target string -> plugin name. `slack.` takes a channel name after the dot.
PREFIXES = (
    ("slack.", "slack"),
    ("email:", "email"),
    ("telegram:", "telegram"),
    ("teams:", "teams"),
)
#: Directory references, expanded at run time.
REFERENCE_PREFIXES = ("group:", "recipient:")
#: Recipient field -> the plugin that reaches it (phone numbers are for Kakao, not notify).
ADDRESS_FIELDS = (
    ("slack_id", "slack"),
    ("email", "email"),
    ("telegram_id", "telegram"),
    ("teams_id", "teams"),
)


#: Plugins whose address may be a URL the plugin then calls (Teams incoming webhooks).
URL_ADDRESS_PLUGINS = ("teams",)
_URL = re.compile(r"\s*https?://", re.IGNORECASE)


def address_url(target: Target) -> str | None:
    """The URL the target's plugin will call, when the address is one (a Teams webhook URL).

    Such a URL is the tenant's choice of host, so it is held to the outbound policy; a
    Teams suffix goes to the operator's ``AISOPSFLOW_TEAMS_BASE_URL`` instead.
    """
    if target.plugin in URL_ADDRESS_PLUGINS and _URL.match(target.address):
        return target.address.strip()
    return None


def is_reference(text: str) -> bool:
    """True for ``group:<name>`` and ``recipient:<id>``."""
    return text.startswith(REFERENCE_PREFIXES)


def parse_target(text: str) -> Target:
    """``slack.ops`` -> Target('slack', 'ops'); ValidationError for anything not direct."""
    for prefix, plugin in PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            return Target(plugin, text[len(prefix) :])
    raise ValidationError(f"target {text!r} is not a direct slack./email:/telegram:/teams: target")


def recipient_targets(fields: Mapping[str, str | None]) -> list[Target]:
    """Every channel address a recipient has, in channel order."""
    return [Target(plugin, fields[field]) for field, plugin in ADDRESS_FIELDS if fields.get(field)]


def normalize_phone(raw: str) -> str:
    """Korean mobile numbers to digits: ``010-1234-5678`` and ``+82 10 1234 5678`` -> ``01012345678``.

    Other international numbers keep their ``+`` and digits. ValueError for anything else.
    """
    digits = re.sub(r"[\s\-().]", "", raw.strip())
    if digits.startswith("+82"):
        digits = "0" + digits[3:].lstrip("0")
    elif digits.startswith("0082"):
        digits = "0" + digits[4:].lstrip("0")
    if re.fullmatch(r"0\d{8,10}", digits) or re.fullmatch(r"\+[1-9]\d{6,14}", digits):
        return digits
    raise ValueError(f"{raw!r} is not a phone number (e.g. 010-1234-5678 or +82 10 1234 5678)")
