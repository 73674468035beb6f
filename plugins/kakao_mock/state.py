"""What the mock holds between requests: its config, the messages it took and their answers.

Thread-safe: the plugin serves with threads, and one lock guards it all.
"""

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
#: Send answers kept by idempotency key, the oldest going first like the messages.
MAX_ANSWERS = MAX_MESSAGES

#: ``(tenant_id, provider_id, trace_id)``: sends with the same key are one send.
SendKey = tuple[str, str, str]


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

    @property
    def idempotency_key(self) -> SendKey | None:
        """What makes a repeat of this send the same send; None (no idempotency) for an empty trace id."""
        if not self.trace_id:
            return None
        return (self.tenant_id, self.provider_id, self.trace_id)


class MockState:
    """The current config, the kept messages and the first answer to each idempotency key."""

    def __init__(self, config: MockConfig) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._messages: OrderedDict[str, Message] = OrderedDict()
        self._answers: OrderedDict[SendKey, dict[str, Any]] = OrderedDict()
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

    def record(self, message: Message, answer: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """Keep ``message`` and its ``answer``, unless its idempotency key was seen before.

        Returns the answer to give and the generation the message's delivery events belong
        to. For a repeat that is the first send's answer (whatever the repeat's body) and
        None: nothing is kept and no delivery events may be scheduled.
        """
        key = message.idempotency_key
        with self._lock:
            first = self._answers.get(key) if key is not None else None
            if first is not None:
                return copy.deepcopy(first), None
            self._messages[message.provider_message_id] = message
            while len(self._messages) > MAX_MESSAGES:
                self._messages.popitem(last=False)
            if key is not None:
                self._answers[key] = copy.deepcopy(answer)
                while len(self._answers) > MAX_ANSWERS:
                    self._answers.popitem(last=False)
            return answer, self._generation

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
        """Forget every message, answer and delivery event not yet posted; the config stays."""
        with self._lock:
            self._messages.clear()
            self._answers.clear()
            self._generation += 1
