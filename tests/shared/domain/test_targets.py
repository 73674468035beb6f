"""Target strings, recipient addresses and phone numbers."""

from __future__ import annotations

import pytest

from shared.domain.targets import (
    Target,
    is_reference,
    normalize_phone,
    parse_target,
    recipient_targets,
)
from shared.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slack.ops-alerts", Target("slack", "ops-alerts")),
        ("email:oncall@example.com", Target("email", "oncall@example.com")),
        ("telegram:-100123", Target("telegram", "-100123")),
        (
            "teams:https://example.webhook.office.com/x",
            Target("teams", "https://example.webhook.office.com/x"),
        ),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["slack.", "sms:010", "group:oncall", "ops"])
def test_parse_target_refuses_anything_else(text):
    with pytest.raises(ValidationError):
        parse_target(text)


def test_references():
    assert (
        is_reference("group:oncall")
        and is_reference("recipient:rc_1")
        and not is_reference("slack.x")
    )


def test_recipient_targets_cover_every_channel_in_order():
    fields = {
        "slack_id": "U1",
        "email": "kim@example.com",
        "telegram_id": "55",
        "teams_id": None,
        "phone": "01012345678",
    }

    assert recipient_targets(fields) == [
        Target("slack", "U1"),
        Target("email", "kim@example.com"),
        Target("telegram", "55"),
    ]
    assert recipient_targets({"phone": "01012345678"}) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("010-1234-5678", "01012345678"),
        ("01012345678", "01012345678"),
        ("+82 10 1234 5678", "01012345678"),
        ("+82-10-1234-5678", "01012345678"),
        ("0082 10 1234 5678", "01012345678"),
        ("(02) 123-4567", "021234567"),
        ("+1 415 555 0100", "+14155550100"),
    ],
)
def test_normalize_phone(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "12", "+", "010-12"])
def test_normalize_phone_refuses_non_numbers(raw):
    with pytest.raises(ValueError, match="not a phone number"):
        normalize_phone(raw)
