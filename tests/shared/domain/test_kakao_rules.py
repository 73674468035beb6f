"""Kakao rules: required vars, reading a provider's answer, applying delivery events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.domain.kakao import (
    DeliveryEvent,
    apply_event,
    fallback_message,
    missing_vars,
    read_answer,
    send_error_fallback_due,
)

TO = ["01011112222", "01033334444"]


@pytest.mark.parametrize(
    ("required", "values", "missing"),
    [
        (["host", "system"], {"host": "db-1", "system": "prod"}, []),
        (["host", "system"], {"host": "db-1"}, ["system"]),
        (["host", "system"], {"host": " ", "system": None}, ["host", "system"]),
        (["count"], {"count": 0}, []),
        ([], {"extra": "x"}, []),
    ],
)
def test_missing_vars(required, values, missing):
    assert missing_vars(required, values) == missing


@pytest.mark.parametrize(
    ("answer", "ok", "accepted", "failed", "error"),
    [
        ({"ok": True, "provider_message_id": "m", "result": {"accepted": 2, "failed": 0}, "error": None}, True, 2, 0, None),
        ({"ok": True, "provider_message_id": "m"}, True, 2, 0, None),
        ({"ok": True, "provider_message_id": "m", "recipients": [{"to": TO[1], "status": "failed", "reason": "blocked"}]}, True, 1, 1, None),
        ({"ok": True, "provider_message_id": "m", "result": {"accepted": 0, "failed": 2}, "recipients": [{"to": p, "status": "failed", "reason": "blocked"} for p in TO]}, False, 0, 2, "every recipient failed: blocked"),
        ({"ok": False, "provider_message_id": None, "result": {"accepted": 0, "failed": 2}, "error": "quota exceeded"}, False, 0, 2, "quota exceeded"),
        ({"ok": False}, False, 0, 2, "the provider refused the send"),
        ({"ok": True, "result": {"accepted": 2, "failed": 0}}, False, 0, 2, "the provider answered ok without a provider_message_id"),
        ({"status": "sent"}, False, 0, 2, "the provider's answer has no true/false 'ok' field"),
    ],
)  # fmt: skip
def test_read_answer(answer, ok, accepted, failed, error):
    result = read_answer(answer, TO)

    assert (result.ok, result.accepted, result.failed, result.error) == (
        ok,
        accepted,
        failed,
        error,
    )


def test_read_answer_keeps_each_recipients_reason():
    answer = {
        "ok": False,
        "provider_message_id": "m",
        "error": "every recipient failed",
        "recipients": [{"to": TO[0], "status": "failed", "reason": "matched fail_pattern"}],
    }

    result = read_answer(answer, TO)

    assert result.recipients == {
        TO[0]: ("failed", "matched fail_pattern"),
        TO[1]: ("failed", "every recipient failed"),
    }


T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("status", "events", "event", "expected_status", "new"),
    [
        ("accepted", [], DeliveryEvent("delivered", None, T0), "delivered", True),
        ("accepted", [], DeliveryEvent("failed", "blocked", T0), "delivery_failed", True),
        ("delivered", [{"status": "delivered", "reason": None, "occurred_at": "2026-11-26T10:00:00.000000Z"}], DeliveryEvent("delivered", None, T0), "delivered", False),
        ("delivered", [{"status": "delivered", "reason": None, "occurred_at": "2026-11-26T10:00:00.000000Z"}], DeliveryEvent("failed", "late", T0 - timedelta(minutes=1)), "delivered", True),
        ("failed", [], DeliveryEvent("delivered", None, T0), "failed", True),
    ],
)  # fmt: skip
def test_apply_event(status, events, event, expected_status, new):
    result_status, result_events, is_new = apply_event(status, events, event)

    assert (result_status, is_new) == (expected_status, new)
    assert len(result_events) == len(events) + (1 if new else 0)


def test_fallback_message_names_the_template_the_reason_and_the_vars():
    text = fallback_message(
        provider="mock",
        template_id="ops_alert_v1",
        values={"host": "db-1"},
        reason="HTTP 503",
        to=TO,
    )

    assert text["title"] == "[Kakao fallback] ops_alert_v1"
    assert "'mock' was not delivered: HTTP 503" in text["message"]
    assert "host: db-1" in text["message"] and TO[0] in text["message"]


@pytest.mark.parametrize(
    ("ok", "fallback_on", "targets", "due"),
    [
        (False, ("send_error",), ("slack.ops",), True),
        (False, ("send_error", "delivery_failed"), ("slack.ops", "email:a@b.c"), True),
        (True, ("send_error",), ("slack.ops",), False),
        (False, ("delivery_failed",), ("slack.ops",), False),
        (False, ("send_error",), (), False),
    ],
)
def test_send_error_fallback_due(ok, fallback_on, targets, due):
    assert send_error_fallback_due(ok, fallback_on, targets) is due
