"""The plugin's one call to Core: resolve an approval on behalf of a Slack user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

#: Slack shows an error unless the interaction is answered within 3 s, so Core gets less.
CONNECT_TIMEOUT_MS = 1000
READ_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class CoreAnswer:
    """Core's HTTP status (0 when unreachable) and its JSON body (``{}`` when none)."""

    status: int
    body: dict[str, Any]

    @property
    def message(self) -> str:
        """Core's error message, or a description of what went wrong."""
        return str(self.body.get("message") or f"Core answered HTTP {self.status}")


class CoreClient:
    """Calls ``POST {core_url}/api/approvals/{execution}/{step}/resolve`` with the plugin token."""

    def __init__(
        self, core_url: str, plugin_token: str, *, session: requests.Session | None = None
    ) -> None:
        self.core_url = core_url.rstrip("/")
        self.plugin_token = plugin_token
        self.session = session or requests.Session()

    def resolve(self, execution_id: str, step_id: str, decision: str, actor: str) -> CoreAnswer:
        """Record ``actor``'s (a Slack user id) decision; never raises for HTTP trouble."""
        url = (
            f"{self.core_url}/api/approvals/{quote(execution_id, safe='')}"
            f"/{quote(step_id, safe='')}/resolve"
        )
        try:
            response = self.session.post(
                url,
                json={"decision": decision, "comment": "", "actor": actor, "channel": "slack"},
                headers={"Authorization": f"Bearer {self.plugin_token}"},
                timeout=(CONNECT_TIMEOUT_MS / 1000, READ_TIMEOUT_MS / 1000),
            )
        except requests.RequestException as error:
            return CoreAnswer(0, {"message": f"Core at {self.core_url} is unreachable: {error}"})
        try:
            body = response.json()
        except ValueError:
            body = {}
        return CoreAnswer(response.status_code, body if isinstance(body, dict) else {})
