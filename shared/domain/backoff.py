"""Retry policy for steps: exponential backoff with equal jitter, and which outcomes retry."""

from __future__ import annotations

import random
from collections.abc import Sequence

#: The outcome classes ``retry_on`` may name besides exact HTTP status codes.
RETRY_CLASSES = frozenset({"5xx", "4xx", "timeout", "connection"})
#: What retries when a step gives no ``retry_on``: server errors, rate limits, transport failures.
DEFAULT_RETRY_ON: tuple[str | int, ...] = ("5xx", 429, "timeout", "connection")
#: The outcome classes a ``runner`` step's ``retry_on`` may name besides exact exit codes.
RUNNER_RETRY_CLASSES = frozenset({"no_runner", "lost", "timeout"})
#: What retries in a ``runner`` step without ``retry_on``: no runner online, a lost job, a timeout.
DEFAULT_RUNNER_RETRY_ON: tuple[str | int, ...] = ("no_runner", "lost", "timeout")


def backoff_ms(
    attempt: int,
    *,
    base_ms: int,
    max_ms: int,
    jitter: bool,
    random_fraction: float | None = None,
) -> int:
    """Milliseconds to wait before the next try, after ``attempt`` failed tries (1 = first retry).

    Without jitter: ``base_ms * 2 ** (attempt - 1)``, capped at ``max_ms``. With jitter
    ("equal jitter"): half of that delay fixed plus ``random_fraction`` times the other
    half, so retries of many executions spread out yet never wait less than half the
    delay — never below ``base_ms / 2`` and never above ``max_ms`` (when ``max_ms`` is
    below ``base_ms``, the cap wins). ``random_fraction`` is in [0, 1); when None it is
    drawn from :func:`random.random` — the one impurity here, which tests avoid by
    passing it.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt!r}")
    if base_ms < 0 or max_ms < 0:
        raise ValueError(f"base_ms and max_ms must not be negative, got {base_ms!r}, {max_ms!r}")
    shift = attempt - 1
    # Once 2**shift alone exceeds the cap the result is the cap; checking that first
    # keeps a huge attempt count from building a huge integer.
    if base_ms == 0:
        delay = 0
    elif shift >= max_ms.bit_length():
        delay = max_ms
    else:
        delay = min(base_ms << shift, max_ms)
    if not jitter:
        return delay
    if random_fraction is None:
        random_fraction = random.random()
    if not 0 <= random_fraction < 1:
        raise ValueError(f"random_fraction must be in [0, 1), got {random_fraction!r}")
    # The fixed part rounds up so an odd delay still keeps at least half of itself.
    fixed = delay - delay // 2
    return fixed + int(random_fraction * (delay // 2))


def is_retryable(outcome: str | int, retry_on: Sequence[str | int] = ()) -> bool:
    """True when a step whose try ended in ``outcome`` should be tried again.

    ``outcome`` is the HTTP status code received, or ``"timeout"`` / ``"connection"``
    when there was none. An empty ``retry_on`` means the default: any 5xx, 429,
    timeouts and connection errors. Otherwise it replaces the default and lists exact
    status codes and the classes in :data:`RETRY_CLASSES`; anything else is a
    ``ValueError`` (the workflow validator should have caught it).
    """
    if not retry_on:
        retry_on = DEFAULT_RETRY_ON
    for item in retry_on:
        # bool is an int subclass; a stray ``true`` from YAML is not status code 1.
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"retry_on item {item!r} is not a status code or class")
        if isinstance(item, str) and item not in RETRY_CLASSES:
            raise ValueError(
                f"retry_on item {item!r} is unknown; use a status code or one of "
                f"{sorted(RETRY_CLASSES)}"
            )
    return any(_matches(outcome, item) for item in retry_on)


def is_retryable_runner(outcome: str | int, retry_on: Sequence[str | int] = ()) -> bool:
    """True when a ``runner`` step whose try ended in ``outcome`` should be tried again.

    ``outcome`` is the command's exit code, or ``"no_runner"`` / ``"lost"`` /
    ``"timeout"``. An empty ``retry_on`` means :data:`DEFAULT_RUNNER_RETRY_ON`;
    otherwise it replaces it and lists exact exit codes and classes of
    :data:`RUNNER_RETRY_CLASSES` (a nonzero exit never retries unless named).
    """
    if not retry_on:
        retry_on = DEFAULT_RUNNER_RETRY_ON
    for item in retry_on:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"retry_on item {item!r} is not an exit code or class")
        if isinstance(item, str) and item not in RUNNER_RETRY_CLASSES:
            raise ValueError(
                f"retry_on item {item!r} is unknown; use an exit code or one of "
                f"{sorted(RUNNER_RETRY_CLASSES)}"
            )
    return outcome in retry_on


def _matches(outcome: str | int, item: str | int) -> bool:
    if isinstance(outcome, str) or isinstance(item, int):
        return outcome == item
    if item == "5xx":
        return 500 <= outcome <= 599
    if item == "4xx":
        return 400 <= outcome <= 499
    return False
