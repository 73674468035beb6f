"""Notify targets: which channel plugin a target string goes to. Pure."""

from __future__ import annotations

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


def parse_target(text: str) -> Target:
    """``slack.ops`` -> Target('slack', 'ops'); ValidationError for anything not direct."""
    for prefix, plugin in PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            return Target(plugin, text[len(prefix) :])
    raise ValidationError(f"target {text!r} is not a direct slack./email:/telegram:/teams: target")
