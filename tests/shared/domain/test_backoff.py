"""Backoff delays and which step outcomes are retried."""

from __future__ import annotations

import pytest

from shared.domain.backoff import backoff_ms, is_retryable


@pytest.mark.parametrize(
    ("attempt", "base_ms", "max_ms", "expected"),
    [
        (1, 500, 60_000, 500),
        (2, 500, 60_000, 1_000),
        (3, 500, 60_000, 2_000),
        (7, 500, 60_000, 32_000),
        (8, 500, 60_000, 60_000),
        (9, 500, 60_000, 60_000),
        (10**9, 500, 60_000, 60_000),
        (1, 0, 60_000, 0),
        (10**9, 0, 60_000, 0),
        (1, 5_000, 1_000, 1_000),
        (1, 500, 0, 0),
    ],
    ids=[
        "first-retry-is-base",
        "doubles",
        "doubles-again",
        "below-cap",
        "capped",
        "stays-capped",
        "huge-attempt-capped-without-overflow",
        "zero-base",
        "zero-base-huge-attempt",
        "cap-below-base-wins",
        "zero-cap",
    ],
)
def test_backoff_without_jitter(attempt, base_ms, max_ms, expected):
    delay = backoff_ms(attempt, base_ms=base_ms, max_ms=max_ms, jitter=False)

    assert delay == expected


@pytest.mark.parametrize(
    ("attempt", "base_ms", "max_ms", "random_fraction", "expected"),
    [
        (1, 1_000, 60_000, 0.0, 500),
        (1, 1_000, 60_000, 0.5, 750),
        (1, 1_000, 60_000, 0.999999, 999),
        (3, 1_000, 60_000, 0.0, 2_000),
        (3, 1_000, 60_000, 0.25, 2_500),
        (20, 1_000, 60_000, 0.0, 30_000),
        (20, 1_000, 60_000, 0.999999, 59_999),
        (1, 3, 60_000, 0.0, 2),
        (10**9, 1_000, 60_000, 0.5, 45_000),
    ],
    ids=[
        "least-is-half",
        "middle",
        "most-is-just-below-full",
        "third-try-least",
        "third-try-quarter",
        "capped-least",
        "capped-most",
        "odd-base-rounds-fixed-half-up",
        "huge-attempt",
    ],
)
def test_backoff_with_equal_jitter(attempt, base_ms, max_ms, random_fraction, expected):
    delay = backoff_ms(
        attempt, base_ms=base_ms, max_ms=max_ms, jitter=True, random_fraction=random_fraction
    )

    assert delay == expected


@pytest.mark.parametrize("attempt", range(1, 40))
@pytest.mark.parametrize("random_fraction", [0.0, 0.3, 0.999999])
def test_jittered_delay_stays_between_half_base_and_cap(attempt, random_fraction):
    delay = backoff_ms(
        attempt, base_ms=250, max_ms=10_000, jitter=True, random_fraction=random_fraction
    )

    assert 125 <= delay <= 10_000


def test_jitter_without_a_fraction_draws_one():
    delays = {backoff_ms(4, base_ms=1_000, max_ms=60_000, jitter=True) for _ in range(200)}

    assert all(4_000 <= delay < 8_000 for delay in delays)
    assert len(delays) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0, "base_ms": 100, "max_ms": 1_000, "jitter": False},
        {"attempt": 1, "base_ms": -1, "max_ms": 1_000, "jitter": False},
        {"attempt": 1, "base_ms": 100, "max_ms": -1, "jitter": False},
        {"attempt": 1, "base_ms": 100, "max_ms": 1_000, "jitter": True, "random_fraction": 1.0},
        {"attempt": 1, "base_ms": 100, "max_ms": 1_000, "jitter": True, "random_fraction": -0.1},
    ],
    ids=["attempt-zero", "negative-base", "negative-cap", "fraction-one", "fraction-negative"],
)
def test_backoff_rejects_nonsense(kwargs):
    attempt = kwargs.pop("attempt")

    with pytest.raises(ValueError):
        backoff_ms(attempt, **kwargs)


@pytest.mark.parametrize(
    ("outcome", "retry_on", "expected"),
    [
        (500, (), True),
        (503, (), True),
        (599, (), True),
        (429, (), True),
        ("timeout", (), True),
        ("connection", (), True),
        (400, (), False),
        (404, (), False),
        (409, (), False),
        (200, (), False),
        (301, (), False),
        (503, (503,), True),
        (500, (503,), False),
        (429, (503,), False),
        ("timeout", (503,), False),
        (409, (409, "timeout"), True),
        ("timeout", (409, "timeout"), True),
        ("connection", (409, "timeout"), False),
        (404, ("4xx",), True),
        (429, ("4xx",), True),
        (500, ("4xx",), False),
        (502, ("5xx",), True),
        (429, ("5xx",), False),
        ("connection", ["connection"], True),
    ],
)
def test_is_retryable(outcome, retry_on, expected):
    assert is_retryable(outcome, retry_on) is expected


@pytest.mark.parametrize(
    "retry_on",
    [("3xx",), ("timeouts",), (True,), (503.0,), (503, "dns")],
    ids=["unknown-class", "misspelt", "bool", "float", "unknown-after-valid"],
)
def test_is_retryable_rejects_unknown_items(retry_on):
    with pytest.raises(ValueError, match="retry_on item"):
        is_retryable(503, retry_on)
