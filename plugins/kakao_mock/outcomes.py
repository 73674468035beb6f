"""Which recipients the mock accepts at send, and what their delivery events say. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from plugins.kakao_mock.config import MockConfig

#: A draw in [0, 1), compared with ``failure_rate`` (``random.random`` in the app).
Draw = Callable[[], float]
#: Recipients named one by one in a send's error before the rest are counted.
MAX_NAMED = 5


@dataclass(frozen=True)
class Recipient:
    """One number of a send: ``accepted`` or ``failed``, with the reason when it failed."""

    to: str
    status: str
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The entry of the answer's ``recipients`` list."""
        return asdict(self)


def judge_recipients(to: Sequence[str], config: MockConfig, draw: Draw) -> list[Recipient]:
    """Each number accepted, unless it matches ``fail_pattern`` or loses the ``failure_rate`` draw."""
    judged = []
    for phone in to:
        if config.fail_pattern and re.search(config.fail_pattern, phone):
            judged.append(Recipient(phone, "failed", "matched fail_pattern"))
        elif config.failure_rate and draw() < config.failure_rate:
            judged.append(Recipient(phone, "failed", "failed the failure_rate draw"))
        else:
            judged.append(Recipient(phone, "accepted"))
    return judged


def send_error(recipients: Sequence[Recipient]) -> str | None:
    """The answer's ``error`` when no recipient was accepted, naming why each failed; else None."""
    if any(recipient.status == "accepted" for recipient in recipients):
        return None
    named = "; ".join(f"{item.to} {item.reason}" for item in recipients[:MAX_NAMED])
    more = len(recipients) - MAX_NAMED
    return f"every recipient failed: {named}" + (f"; and {more} more" if more > 0 else "")


def delivery_outcome(phone: str, config: MockConfig) -> tuple[str, str | None]:
    """``(status, reason)`` of an accepted number's delivery event: delivered, or failed."""
    if config.delivery_fail_pattern and re.search(config.delivery_fail_pattern, phone):
        return "failed", "not delivered: the number matched delivery_fail_pattern"
    return "delivered", None
