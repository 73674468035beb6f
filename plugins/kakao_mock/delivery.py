"""The delivery-event simulator: posts each send's delivery events to Core after a delay.

One daemon thread works through a queue ordered by due time, so a send answers at once
and a slow or absent Core delays only its own retries. The thread starts with the first
send: the app is built before gunicorn forks its worker, and threads do not survive a fork.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from plugins.kakao_mock.config import MockConfig
from plugins.kakao_mock.outcomes import delivery_outcome
from plugins.kakao_mock.state import Message, MockState, utc_timestamp

log = logging.getLogger(__name__)

#: Where Core takes delivery events (the contract of docs/plugins.md, "Kakao provider contract").
DELIVERY_EVENTS_PATH = "/api/kakao/delivery-events"
#: Waits before each retry of a POST Core did not take, in milliseconds; then the mock gives up.
DEFAULT_RETRY_DELAYS_MS = (100, 200, 400, 800)
#: How long to wait for Core to accept a connection and to answer, in milliseconds.
TIMEOUT_MS = (2000, 5000)


@dataclass(order=True)
class _Delivery:
    """The delivery-events POST of one send, due at ``due`` (clock seconds)."""

    due: float
    sequence: int
    provider_message_id: str = field(compare=False)
    body: dict[str, Any] = field(compare=False)
    generation: int = field(compare=False)
    attempts: int = field(compare=False, default=0)


def _retryable(status: int) -> bool:
    # Core starting, overloaded or restarting; any other refusal will not change on retry.
    return status in (408, 429) or status >= 500


class DeliverySimulator:
    """Schedules and posts ``POST {core_url}/api/kakao/delivery-events`` with the plugin token."""

    def __init__(
        self,
        core_url: str,
        plugin_token: str,
        state: MockState,
        *,
        retry_delays_ms: Sequence[int] = DEFAULT_RETRY_DELAYS_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = core_url.rstrip("/") + DELIVERY_EVENTS_PATH
        self.state = state
        self.retry_delays_ms = tuple(retry_delays_ms)
        self.clock = clock
        self._headers = {"Authorization": f"Bearer {plugin_token}"}
        self._session = requests.Session()
        self._queue: list[_Delivery] = []
        self._sequence = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, message: Message, config: MockConfig, generation: int) -> None:
        """Post the events of ``message``'s accepted recipients ``delivery_delay_ms`` from now.

        Their outcomes follow ``config`` as it was at the send.
        """
        accepted = [item.to for item in message.recipients if item.status == "accepted"]
        if not accepted:
            self.state.update(message.provider_message_id, delivery_state="none")
            return
        if not config.delivery_events:
            self.state.update(message.provider_message_id, delivery_state="disabled")
            return
        events = []
        for phone in accepted:
            status, reason = delivery_outcome(phone, config)
            events.append(
                {
                    "provider_message_id": message.provider_message_id,
                    "to": phone,
                    "status": status,
                    "reason": reason,
                    "occurred_at": None,  # stamped when the delivery "happens", at the first POST
                }
            )
        body = {
            "tenant_id": message.tenant_id,
            "provider_id": message.provider_id,
            "events": events,
        }
        due = self.clock() + config.delivery_delay_ms / 1000
        self._push(
            _Delivery(due, next(self._sequence), message.provider_message_id, body, generation)
        )

    def _push(self, delivery: _Delivery) -> None:
        with self._wakeup:
            heapq.heappush(self._queue, delivery)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="kakao-mock-delivery", daemon=True
                )
                self._thread.start()
            self._wakeup.notify()

    def _next_due(self) -> _Delivery:
        with self._wakeup:
            while True:
                wait = self._queue[0].due - self.clock() if self._queue else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._queue)
                self._wakeup.wait(wait)

    def _run(self) -> None:
        while True:
            delivery = self._next_due()
            try:
                self._attempt(delivery)
            except Exception:
                # The thread must outlive any one delivery, or every later event is lost.
                log.exception("the delivery of %s failed", delivery.provider_message_id)

    def _attempt(self, delivery: _Delivery) -> None:
        if delivery.generation != self.state.generation:
            return  # /mock/reset came in between: the message is forgotten
        message_id = delivery.provider_message_id
        delivery.attempts += 1
        if delivery.attempts == 1:
            stamp = utc_timestamp()
            for event in delivery.body["events"]:
                event["occurred_at"] = stamp
            self.state.update(message_id, events=copy.deepcopy(delivery.body["events"]))
        status, error, answer = self._post(delivery.body)
        not_yet = _not_stored_yet(delivery.body["events"], answer)
        if status is not None and 200 <= status < 300 and not_yet:
            # Core answered before it stored the send's rows (an event can race the
            # send's own answer): post those events again, as real providers retry.
            delivery.body = {**delivery.body, "events": not_yet}
            status, error = 409, f"Core did not know {len(not_yet)} message(s) yet"
        if status is not None and 200 <= status < 300:
            self.state.update(
                message_id,
                delivery_state="posted",
                delivery_attempts=delivery.attempts,
                core_status=status,
                delivery_error=None,
            )
            return
        retry = status is None or _retryable(status) or bool(not_yet)
        if retry and delivery.attempts <= len(self.retry_delays_ms):
            delay_ms = self.retry_delays_ms[delivery.attempts - 1]
            delivery.due = self.clock() + delay_ms / 1000
            self.state.update(
                message_id,
                delivery_state="retrying",
                delivery_attempts=delivery.attempts,
                core_status=status,
                delivery_error=error,
            )
            self._push(delivery)
            return
        self.state.update(
            message_id,
            delivery_state="gave_up",
            delivery_attempts=delivery.attempts,
            core_status=status,
            delivery_error=error,
        )
        log.warning(
            "gave up posting the delivery events of %s to %s after %d attempts: %s",
            message_id,
            self.url,
            delivery.attempts,
            error,
        )

    def _post(self, body: dict[str, Any]) -> tuple[int | None, str | None, Any]:
        """Core's HTTP status (None when it did not answer), what went wrong, and its JSON answer."""
        try:
            response = self._session.post(
                self.url,
                json=body,
                headers=self._headers,
                timeout=tuple(ms / 1000 for ms in TIMEOUT_MS),
            )
        except requests.RequestException as error:
            return None, f"Core did not answer ({type(error).__name__})", None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if 200 <= response.status_code < 300:
            return response.status_code, None, answer
        detail = answer.get("message") if isinstance(answer, dict) else None
        text = f"Core answered HTTP {response.status_code}"
        return response.status_code, f"{text}: {str(detail)[:200]}" if detail else text, answer


def _not_stored_yet(events: list[dict[str, Any]], answer: Any) -> list[dict[str, Any]]:
    """The events Core reported as ``no such message`` (it has not stored that send yet)."""
    unknown = answer.get("unknown") if isinstance(answer, dict) else None
    if not isinstance(unknown, list):
        return []
    missing = {
        (item.get("provider_message_id"), item.get("to"))
        for item in unknown
        if isinstance(item, dict) and item.get("reason") == "no such message"
    }
    return [event for event in events if (event["provider_message_id"], event["to"]) in missing]
