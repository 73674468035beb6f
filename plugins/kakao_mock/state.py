"""What the mock holds between requests: its config and the messages it took. Thread-safe."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from plugins.kakao_mock.config import MockConfig
from plugins.kakao_mock.outcomes import Recipient

#: Messages kept for ``GET /mock/messages``; the oldest go first, so `up` never grows without end.
MAX_MESSAGES = 1000


def utc_timestamp(moment: datetime | None = None) -> str:
    """``2026-11-26T13:00:00.123456Z``: the timestamp format of messages and delivery events."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Message:
    """One send the mock took, and how posting its delivery events to Core went."""

    provider_message_id: str
    tenant_id: str
    provider_id: str
    template_id: str
    to: list[str]
    vars: dict[str, Any]
    trace_id: str
    recipients: list[Recipient]
    received_at: str
    #: The delivery events, once the first attempt to post them is made.
    events: list[dict[str, Any]] = field(default_factory=list)
    #: pending, retrying, posted, gave_up, disabled (delivery_events off) or none (no recipient accepted).
    delivery_state: str = "pending"
    delivery_attempts: int = 0
    #: Core's HTTP status on the last attempt; None when it did not answer.
    core_status: int | None = None
    delivery_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The entry of ``GET /mock/messages``."""
        return {
            "provider_message_id": self.provider_message_id,
            "tenant_id": self.tenant_id,
            "provider_id": self.provider_id,
            "template_id": self.template_id,
            "to": list(self.to),
            "vars": copy.deepcopy(self.vars),
            "trace_id": self.trace_id,
            "recipients": [recipient.as_dict() for recipient in self.recipients],
            "received_at": self.received_at,
            "events": copy.deepcopy(self.events),
            "delivery": {
                "state": self.delivery_state,
                "attempts": self.delivery_attempts,
                "core_status": self.core_status,
                "error": self.delivery_error,
            },
        }


class MockState:
    """The current config and the kept messages, behind one lock (the plugin serves with threads)."""

    def __init__(self, config: MockConfig) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._messages: OrderedDict[str, Message] = OrderedDict()
        #: Bumped by reset, so delivery events scheduled before it are dropped.
        self._generation = 0

    @property
    def config(self) -> MockConfig:
        """The config now in force."""
        with self._lock:
            return self._config

    def configure(self, changes: Any) -> MockConfig:
        """Apply a partial ``/mock/config`` body; BadRequest naming the field leaves it unchanged."""
        with self._lock:
            self._config = self._config.updated(changes)
            return self._config

    @property
    def generation(self) -> int:
        """How many resets there have been."""
        with self._lock:
            return self._generation

    def record(self, message: Message) -> int:
        """Keep ``message``; returns the generation its delivery events belong to."""
        with self._lock:
            self._messages[message.provider_message_id] = message
            while len(self._messages) > MAX_MESSAGES:
                self._messages.popitem(last=False)
            return self._generation

    def update(self, provider_message_id: str, **changes: Any) -> None:
        """Set fields of a kept message; a message dropped meanwhile (reset, limit) is ignored."""
        with self._lock:
            message = self._messages.get(provider_message_id)
            if message is None:
                return
            for name, value in changes.items():
                setattr(message, name, value)

    def messages(self) -> list[dict[str, Any]]:
        """Every kept message, oldest first, as copies."""
        with self._lock:
            return [message.as_dict() for message in self._messages.values()]

    def reset(self) -> None:
        """Forget every message and every delivery event not yet posted; the config stays."""
        with self._lock:
            self._messages.clear()
            self._generation += 1
