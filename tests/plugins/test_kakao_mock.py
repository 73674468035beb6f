"""The mock Kakao provider as a real process, posting delivery events to a fake Core."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from plugins.kakao_mock.config import MockConfig
from plugins.kakao_mock.outcomes import Recipient, judge_recipients, send_error
from plugins.kakao_mock.send_request import parse_send_request
from shared.errors import BadRequest, SettingsError
from shared.plugin_token import load_plugin_token
from shared.settings import load_settings
from tests.support.loopback import Loopback
from tests.support.processes import Process

EVENTS = "/api/kakao/delivery-events"
MESSAGE_ID = re.compile(r"mock-[0-9a-f]{32}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
SEND = {
    "tenant_id": "t_1",
    "provider_id": "mock",
    "template_id": "ops_alert_v1",
    "to": ["01012345678"],
    "vars": {"host": "db-1", "system": "prod"},
    "trace_id": "tr_1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """The first truthy value of ``condition()``, polled until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


@dataclass
class KakaoMock:
    url: str
    token: str
    core: Loopback
    process: Process

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        timeout: float = 10,
    ):
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(
            method, self.url + path, json=body, headers=headers, timeout=timeout
        )

    def send(self, timeout: float = 10, **changes: Any) -> requests.Response:
        """Sends ``SEND`` with ``changes``; a fresh trace id each time unless one is given."""
        body = {**SEND, "trace_id": f"tr_{uuid.uuid4().hex}", **changes}
        return self.call("POST", "/kakao/alimtalk/send", body, timeout=timeout)

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = self.call("POST", "/mock/config", changes)
        assert response.status_code == 200, response.text
        return response.json()

    def messages(self) -> list[dict[str, Any]]:
        return self.call("GET", "/mock/messages").json()["messages"]

    def delivery(self, provider_message_id: str) -> dict[str, Any]:
        (message,) = [m for m in self.messages() if m["provider_message_id"] == provider_message_id]
        return message

    def posts(self) -> list[dict[str, Any]]:
        """The delivery-event POSTs the fake Core received, oldest first."""
        with self.core.lock:
            return list(self.core.hits[EVENTS])


@pytest.fixture
def start_mock(make_settings, tmp_path) -> Iterator[Callable[..., KakaoMock]]:
    """Starts ``aisopsflow plugin kakao-mock`` with settings overrides; Core is a Loopback."""
    with ExitStack() as stack:

        def start(**overrides: str) -> KakaoMock:
            core = stack.enter_context(Loopback())
            core.route(EVENTS, body={"ok": True})
            settings = make_settings(core_url=core.url, **overrides)
            token = load_plugin_token(settings)
            port = free_port()
            command = ["plugin", "kakao-mock", "--port", str(port)]
            process = Process(settings, command, tmp_path / "kakao-mock.log").start()
            stack.callback(process.stop)
            mock = KakaoMock(f"http://127.0.0.1:{port}", token, core, process)

            def answers() -> bool:
                try:
                    return mock.call("GET", "/mock/config").status_code == 200
                except requests.ConnectionError:
                    return False

            wait_for(answers, timeout=30)
            return mock

        yield start


@pytest.fixture
def mock(start_mock) -> KakaoMock:
    """The mock with quick delivery events (50 ms)."""
    return start_mock(kakao_mock_delivery_delay_ms="50")


# --- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "draws", "expected"),
    [
        (MockConfig(), [], [("01011112222", "accepted", None), ("01000000000", "accepted", None)]),
        (MockConfig(fail_pattern="^0100"), [], [("01011112222", "accepted", None), ("01000000000", "failed", "matched fail_pattern")]),
        (MockConfig(failure_rate=0.5), [0.7, 0.2], [("01011112222", "accepted", None), ("01000000000", "failed", "failed the failure_rate draw")]),
        (MockConfig(failure_rate=1.0), [0.99, 0.0], [("01011112222", "failed", "failed the failure_rate draw"), ("01000000000", "failed", "failed the failure_rate draw")]),
    ],
)  # fmt: skip
def test_judge_recipients(config, draws, expected):
    judged = judge_recipients(["01011112222", "01000000000"], config, iter(draws).__next__)

    assert [(r.to, r.status, r.reason) for r in judged] == expected


def test_send_error_names_why_every_recipient_failed_and_counts_the_rest():
    failed = [Recipient(f"0100000000{i}", "failed", "matched fail_pattern") for i in range(7)]

    assert send_error(failed[:1]) == "every recipient failed: 01000000000 matched fail_pattern"
    assert send_error(failed).endswith("01000000004 matched fail_pattern; and 2 more")
    assert send_error([*failed, Recipient("01012345678", "accepted")]) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fail_pattern": "("}, "fail_pattern"),
        ({"fail_pattern": 5}, "fail_pattern"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": True}, "failure_rate"),
        ({"down": "yes"}, "down"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 1.5}, "latency_ms"),
        ({"delivery_delay_ms": 10**9}, "delivery_delay_ms"),
        ({"delivery_fail_pattern": "[a-"}, "delivery_fail_pattern"),
        ({"delivery_events": 1}, "delivery_events"),
        ({"speed": 3}, "speed"),
    ],
)
def test_a_bad_config_value_is_refused_naming_the_field(change, field):
    with pytest.raises(BadRequest) as caught:
        MockConfig().updated(change)

    assert caught.value.errors == {"field": field} and repr(field) in caught.value.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenant_id": None}, "tenant_id"),
        ({"provider_id": ""}, "provider_id"),
        ({"template_id": 7}, "template_id"),
        ({"to": []}, "to"),
        ({"to": "01012345678"}, "to"),
        ({"to": ["01012345678", "group:oncall"]}, "to[1]"),
        ({"to": [1012345678]}, "to[0]"),
        ({"vars": ["host"]}, "vars"),
        ({"trace_id": None}, "trace_id"),
    ],
)
def test_a_bad_send_body_is_refused_naming_the_field(change, field):
    with pytest.raises(BadRequest) as caught:
        parse_send_request({**SEND, **change})

    assert caught.value.errors == {"field": field} and repr(field) in caught.value.message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AISOPSFLOW_KAKAO_MOCK_FAIL_PATTERN", "(", "regular expression"),
        ("AISOPSFLOW_KAKAO_MOCK_FAILURE_RATE", "2", "from 0 to 1"),
        ("AISOPSFLOW_KAKAO_MOCK_FAILURE_RATE", "often", "from 0 to 1"),
        ("AISOPSFLOW_KAKAO_MOCK_DOWN", "maybe", "true or false"),
        ("AISOPSFLOW_KAKAO_MOCK_LATENCY_MS", "-1", "milliseconds"),
        ("AISOPSFLOW_KAKAO_MOCK_DELIVERY_DELAY_MS", "soon", "milliseconds"),
        ("AISOPSFLOW_KAKAO_MOCK_DELIVERY_FAIL_PATTERN", "[", "regular expression"),
        ("AISOPSFLOW_KAKAO_MOCK_DELIVERY_EVENTS", "sometimes", "true or false"),
    ],
)
def test_a_bad_start_setting_is_one_line_naming_the_variable(variable, value, expected):
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value, "AISOPSFLOW_ENV_FILE": ""})

    message = str(caught.value)
    assert message.startswith(variable) and expected in message and "\n" not in message


# --- the provider contract ------------------------------------------------------------------


def test_a_send_is_accepted_with_a_provider_message_id(mock):
    response = mock.send(to=["01012345678", "01098765432"])

    assert response.status_code == 200
    body = response.json()
    assert MESSAGE_ID.fullmatch(body["provider_message_id"])
    assert body["ok"] is True and body["error"] is None
    assert body["result"] == {"accepted": 2, "failed": 0}
    assert body["recipients"] == [
        {"to": "01012345678", "status": "accepted", "reason": None},
        {"to": "01098765432", "status": "accepted", "reason": None},
    ]
    assert mock.send().json()["provider_message_id"] != body["provider_message_id"]


def test_fail_pattern_and_failure_rate_fail_recipients(mock):
    mock.configure(fail_pattern="^0100")

    some = mock.send(to=["01012345678", "01000000000"]).json()
    every = mock.send(to=["01000000000"]).json()
    mock.configure(fail_pattern=None, failure_rate=1)
    drawn = mock.send(to=["01012345678"]).json()

    assert some["ok"] is True and some["result"] == {"accepted": 1, "failed": 1}
    assert some["recipients"][1] == {
        "to": "01000000000",
        "status": "failed",
        "reason": "matched fail_pattern",
    }
    assert every["ok"] is False and every["result"] == {"accepted": 0, "failed": 1}
    assert every["error"] == "every recipient failed: 01000000000 matched fail_pattern"
    assert drawn["ok"] is False and "failure_rate" in drawn["error"]


def test_down_answers_503_to_all_but_the_mock_controls(mock):
    assert mock.configure(down=True)["down"] is True

    send = mock.send()
    probe = mock.call("POST", "/probe")

    assert send.status_code == 503 and send.json()["code"] == "service_unavailable"
    assert probe.status_code == 503
    assert mock.call("GET", "/mock/config").json()["down"] is True
    assert mock.messages() == []
    mock.configure(down=False)
    assert mock.send().status_code == 200


def test_latency_delays_the_answer(mock):
    mock.configure(latency_ms=300)

    started = time.monotonic()
    assert mock.send().status_code == 200
    assert time.monotonic() - started >= 0.3

    mock.configure(latency_ms=0)
    started = time.monotonic()
    assert mock.send().status_code == 200
    assert time.monotonic() - started < 0.3


def test_a_bad_body_is_400_naming_the_field(mock):
    before = mock.call("GET", "/mock/config").json()

    for path, body, named in [
        ("/kakao/alimtalk/send", {**SEND, "to": ["group:oncall-l1"]}, "'to[0]'"),
        ("/kakao/alimtalk/send", {k: v for k, v in SEND.items() if k != "template_id"}, "'template_id'"),
        ("/kakao/alimtalk/send", "not an object", "expected a JSON object"),
        ("/mock/config", {"failure_rate": 2}, "'failure_rate'"),
        ("/mock/config", {"latency_ms": 5, "fail_pattern": "("}, "'fail_pattern'"),
    ]:  # fmt: skip
        response = mock.call("POST", path, body)

        assert response.status_code == 400, response.text
        assert response.json()["code"] == "bad_request" and named in response.json()["message"]

    assert mock.messages() == [] and mock.call("GET", "/mock/config").json() == before


def test_every_route_needs_the_plugin_token(mock):
    for method, path in [
        ("POST", "/kakao/alimtalk/send"),
        ("POST", "/probe"),
        ("GET", "/mock/config"),
        ("POST", "/mock/config"),
        ("GET", "/mock/messages"),
        ("POST", "/mock/reset"),
    ]:
        for token in ("", "not-the-token"):
            response = mock.call(method, path, SEND, token=token)
            assert response.status_code == 401, (method, path, token)
            assert response.json()["code"] == "unauthorized"


# --- delivery events ------------------------------------------------------------------------


def test_delivery_events_reach_core_with_the_plugin_token_after_the_delay(mock):
    mock.configure(delivery_delay_ms=200, delivery_fail_pattern="5678$")

    sent_at = time.monotonic()
    answer = mock.send(to=["01011112222", "01012345678"]).json()
    (post,) = wait_for(mock.posts)

    assert post["at"] - sent_at >= 0.2
    assert post["headers"]["Authorization"] == f"Bearer {mock.token}"
    body = json.loads(post["body"])
    assert (body["tenant_id"], body["provider_id"]) == ("t_1", "mock")
    first, second = body["events"]
    assert TIMESTAMP.fullmatch(first["occurred_at"])
    assert first == {
        "provider_message_id": answer["provider_message_id"],
        "to": "01011112222",
        "status": "delivered",
        "reason": None,
        "occurred_at": first["occurred_at"],
    }
    assert second["to"] == "01012345678" and second["status"] == "failed"
    assert "delivery_fail_pattern" in second["reason"]
    message = wait_for(
        lambda: (
            (m := mock.delivery(answer["provider_message_id"]))["delivery"]["state"] == "posted"
            and m
        )
    )
    assert message["delivery"] == {
        "state": "posted",
        "attempts": 1,
        "core_status": 200,
        "error": None,
    }
    assert message["events"] == body["events"]


def test_only_accepted_recipients_get_events(mock):
    mock.configure(fail_pattern="^0100")

    answer = mock.send(to=["01000000000", "01012345678"]).json()
    (post,) = wait_for(mock.posts)

    assert [event["to"] for event in json.loads(post["body"])["events"]] == ["01012345678"]
    assert answer["result"] == {"accepted": 1, "failed": 1}


def test_a_post_core_refuses_for_now_is_retried(mock):
    mock.core.route(EVENTS, statuses=[503, 200], body={"ok": True})

    answer = mock.send().json()
    wait_for(lambda: len(mock.posts()) == 2)

    first, second = (json.loads(post["body"]) for post in mock.posts())
    assert first == second  # the same events, occurred_at included
    state = wait_for(
        lambda: mock.delivery(answer["provider_message_id"])["delivery"]["attempts"] == 2
    )
    assert state
    assert mock.delivery(answer["provider_message_id"])["delivery"]["state"] == "posted"


def test_events_core_did_not_know_yet_are_posted_again_alone(mock):
    # An event can race the send's own answer: Core stores the message rows only
    # once the provider answered the send, and reports earlier events as unknown.
    mock.configure(delivery_delay_ms=300)
    answer = mock.send(to=["01011112222", "01033334444"]).json()
    message_id = answer["provider_message_id"]
    mock.core.route(
        EVENTS,
        body={
            "stored": 1,
            "unknown": [
                {
                    "provider_message_id": message_id,
                    "to": "01011112222",
                    "reason": "no such message",
                }
            ],
        },
    )

    wait_for(lambda: len(mock.posts()) >= 2)
    mock.core.route(EVENTS, body={"stored": 1, "unknown": []})
    state = wait_for(lambda: mock.delivery(message_id)["delivery"]["state"] == "posted")

    first, second = (json.loads(post["body"]) for post in mock.posts()[:2])
    assert [event["to"] for event in first["events"]] == ["01011112222", "01033334444"]
    assert [event["to"] for event in second["events"]] == ["01011112222"]
    assert state


def test_the_mock_gives_up_on_a_core_that_keeps_failing_and_says_so(mock):
    mock.core.route(
        EVENTS, statuses=[500], body={"code": "internal_server_error", "message": "boom"}
    )

    answer = mock.send().json()

    message = wait_for(
        lambda: (
            (m := mock.delivery(answer["provider_message_id"]))["delivery"]["state"] == "gave_up"
            and m
        )
    )
    assert message["delivery"] == {
        "state": "gave_up",
        "attempts": 5,
        "core_status": 500,
        "error": "Core answered HTTP 500: boom",
    }
    assert len(mock.posts()) == 5
    assert "gave up posting" in mock.process.output()
    assert mock.token not in mock.process.output()
    assert mock.send().status_code == 200  # still serving


def test_no_events_when_they_are_turned_off_or_nobody_was_accepted(mock):
    mock.configure(delivery_events=False)
    off = mock.send().json()
    mock.configure(delivery_events=True, fail_pattern=".")
    nobody = mock.send().json()

    time.sleep(0.3)  # six times the delivery delay

    assert mock.posts() == []
    assert mock.delivery(off["provider_message_id"])["delivery"]["state"] == "disabled"
    assert mock.delivery(nobody["provider_message_id"])["delivery"]["state"] == "none"


# --- trace_id: the idempotency key ---------------------------------------------------------


def test_a_repeated_trace_id_is_the_same_send(mock):
    first = mock.send(trace_id="sr_1:0")
    (post,) = wait_for(mock.posts)

    repeat = mock.send(trace_id="sr_1:0")
    time.sleep(0.3)  # six times the delivery delay

    assert first.status_code == repeat.status_code == 200
    assert repeat.json() == first.json()
    (message,) = mock.messages()
    assert message["provider_message_id"] == first.json()["provider_message_id"]
    assert mock.posts() == [post]
    other = mock.send(trace_id="sr_1:1").json()
    assert other["provider_message_id"] != first.json()["provider_message_id"]
    assert len(mock.messages()) == 2
    wait_for(lambda: len(mock.posts()) == 2)


def test_a_repeat_with_another_body_gets_the_first_answer(mock):
    mock.configure(fail_pattern="^0100")
    first = mock.send(trace_id="sr_2:0", to=["01000000000"]).json()
    mock.configure(fail_pattern=None)

    repeat = mock.send(
        trace_id="sr_2:0",
        to=["01012345678", "01098765432"],
        template_id="other_v1",
        vars={"host": "db-2"},
    ).json()

    assert first["ok"] is False and repeat == first
    (message,) = mock.messages()
    assert (message["to"], message["template_id"]) == (["01000000000"], "ops_alert_v1")
    time.sleep(0.3)
    assert mock.posts() == []  # nobody was accepted the first time, so no events now either


def test_the_key_is_the_trace_id_within_a_tenant_and_provider(mock):
    ids = {
        mock.send(trace_id="sr_3:0").json()["provider_message_id"],
        mock.send(trace_id="sr_3:0", tenant_id="t_2").json()["provider_message_id"],
        mock.send(trace_id="sr_3:0", provider_id="other").json()["provider_message_id"],
        mock.send(trace_id="").json()["provider_message_id"],
        mock.send(trace_id="").json()["provider_message_id"],  # empty: no idempotency
        mock.send(trace_id="sr_3:0").json()["provider_message_id"],
    }

    assert len(ids) == 5 and len(mock.messages()) == 5
    wait_for(lambda: len(mock.posts()) == 5)


def test_a_retry_after_a_timeout_sends_nothing_again(mock):
    # Core stopped waiting while the provider took the send, then retried the step.
    mock.configure(latency_ms=1000)
    for trace_id in ("sr_4:0", "sr_4:1"):
        with pytest.raises(requests.Timeout):
            mock.send(trace_id=trace_id, timeout=0.2)
    wait_for(mock.messages)  # the provider answered sr_4:0; sr_4:1 takes ~0.2 s longer
    mock.configure(latency_ms=0)

    after = mock.send(trace_id="sr_4:0").json()  # a retry after the first send answered
    during = mock.send(trace_id="sr_4:1").json()  # ... and one while it is still in flight

    wait_for(lambda: len(mock.messages()) == 2)
    time.sleep(0.5)  # the first sr_4:1 has answered too
    assert [m["provider_message_id"] for m in mock.messages()] == [
        after["provider_message_id"],
        during["provider_message_id"],
    ]
    assert mock.send(trace_id="sr_4:0").json() == after
    assert mock.send(trace_id="sr_4:1").json() == during
    wait_for(lambda: len(mock.posts()) == 2)
    time.sleep(0.3)
    assert len(mock.posts()) == 2


def test_a_send_refused_is_not_remembered_and_down_still_answers_503(mock):
    mock.configure(down=True)
    assert mock.send(trace_id="sr_5:0").status_code == 503
    mock.configure(down=False)
    first = mock.send(trace_id="sr_5:0").json()
    mock.configure(down=True)

    assert mock.send(trace_id="sr_5:0").status_code == 503
    mock.configure(down=False)
    assert mock.send(trace_id="sr_5:0").json() == first
    assert len(mock.messages()) == 1


def test_reset_forgets_the_trace_ids(mock):
    first = mock.send(trace_id="sr_6:0").json()
    wait_for(mock.posts)

    assert mock.call("POST", "/mock/reset").json() == {"ok": True}
    again = mock.send(trace_id="sr_6:0").json()

    assert again["provider_message_id"] != first["provider_message_id"]
    assert [m["provider_message_id"] for m in mock.messages()] == [again["provider_message_id"]]
    wait_for(lambda: len(mock.posts()) == 2)


# --- what the mock keeps --------------------------------------------------------------------


def test_messages_lists_each_send_and_reset_forgets_them(mock):
    mock.configure(delivery_delay_ms=300)
    answer = mock.send(to=["01012345678"], trace_id=SEND["trace_id"]).json()

    (message,) = mock.messages()

    assert message["provider_message_id"] == answer["provider_message_id"]
    assert {key: message[key] for key in SEND} == SEND
    assert message["recipients"] == answer["recipients"]
    assert TIMESTAMP.fullmatch(message["received_at"])
    assert message["events"] == [] and message["delivery"]["state"] == "pending"
    assert mock.call("POST", "/mock/reset").json() == {"ok": True}
    assert mock.messages() == []
    time.sleep(0.5)
    assert mock.posts() == []  # the pending events went with the reset


def test_start_time_settings_configure_the_mock(start_mock):
    mock = start_mock(
        kakao_mock_fail_pattern="^0100",
        kakao_mock_failure_rate="0.25",
        kakao_mock_latency_ms="100",
        kakao_mock_delivery_delay_ms="50",
        kakao_mock_delivery_fail_pattern="9$",
        kakao_mock_delivery_events="false",
        kakao_mock_down="true",
    )

    assert mock.call("GET", "/mock/config").json() == {
        "fail_pattern": "^0100",
        "failure_rate": 0.25,
        "down": True,
        "latency_ms": 100,
        "delivery_delay_ms": 50,
        "delivery_fail_pattern": "9$",
        "delivery_events": False,
    }
    assert mock.send().status_code == 503


def test_the_defaults_answer_the_whole_config(start_mock):
    mock = start_mock()

    assert mock.call("GET", "/mock/config").json() == MockConfig().as_dict()
    assert mock.configure(latency_ms=5) == {**MockConfig().as_dict(), "latency_ms": 5}
