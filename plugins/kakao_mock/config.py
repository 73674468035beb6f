"""The mock provider's behaviour: read from settings at start, changed by ``POST /mock/config``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from shared.errors import BadRequest
from shared.settings import MAX_MOCK_DELAY_MS, Settings


@dataclass(frozen=True)
class MockConfig:
    """What the mock does with the next send; a new value replaces the whole object."""

    #: Recipients whose number matches (``re.search``) fail at send; None: none do.
    fail_pattern: str | None = None
    #: Chance, 0 to 1, that each recipient fails at send.
    failure_rate: float = 0.0
    #: Answer 503 to everything but ``/mock/*``.
    down: bool = False
    #: Wait before answering a send, in milliseconds.
    latency_ms: int = 0
    #: Wait after a send before its delivery events are posted to Core, in milliseconds.
    delivery_delay_ms: int = 500
    #: Accepted recipients matching this get a ``failed`` delivery event; None: none do.
    delivery_fail_pattern: str | None = None
    #: Post delivery events to Core at all.
    delivery_events: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> MockConfig:
        """The start-time behaviour, from the ``AISOPSFLOW_KAKAO_MOCK_*`` settings."""
        return cls(
            fail_pattern=settings.kakao_mock_fail_pattern or None,
            failure_rate=settings.kakao_mock_failure_rate,
            down=settings.kakao_mock_down,
            latency_ms=settings.kakao_mock_latency_ms,
            delivery_delay_ms=settings.kakao_mock_delivery_delay_ms,
            delivery_fail_pattern=settings.kakao_mock_delivery_fail_pattern or None,
            delivery_events=settings.kakao_mock_delivery_events,
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``/mock/config`` answers with."""
        return asdict(self)

    def updated(self, changes: Any) -> MockConfig:
        """This config with ``changes`` (a partial ``/mock/config`` body) applied.

        BadRequest naming the first unknown or invalid field; nothing is applied then.
        """
        if not isinstance(changes, Mapping):
            raise BadRequest("expected a JSON object of config fields")
        known = {item.name for item in fields(self)}
        values: dict[str, Any] = {}
        for name, raw in changes.items():
            if name not in known:
                raise BadRequest(
                    f"unknown field {name!r}; expected some of {', '.join(sorted(known))}",
                    errors={"field": name},
                )
            values[name] = _CHECKS[name](name, raw)
        return replace(self, **values)


def _field_error(name: str, expected: str, raw: Any) -> BadRequest:
    return BadRequest(f"{name!r} must be {expected}, got {raw!r}", errors={"field": name})


def _pattern(name: str, raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise _field_error(name, "a regular expression string or null", raw)
    try:
        re.compile(raw)
    except re.error as error:
        raise _field_error(name, f"a valid regular expression ({error})", raw) from error
    return raw


def _rate(name: str, raw: Any) -> float:
    # bool is an int to Python, but `true` is no rate.
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 1:
        raise _field_error(name, "a number from 0 to 1", raw)
    return float(raw)


def _flag(name: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise _field_error(name, "true or false", raw)
    return raw


def _delay(name: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_MOCK_DELAY_MS:
        raise _field_error(
            name, f"a whole number of milliseconds from 0 to {MAX_MOCK_DELAY_MS}", raw
        )
    return raw


#: How each field of a ``/mock/config`` body is checked and converted.
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "fail_pattern": _pattern,
    "failure_rate": _rate,
    "down": _flag,
    "latency_ms": _delay,
    "delivery_delay_ms": _delay,
    "delivery_fail_pattern": _pattern,
    "delivery_events": _flag,
}
