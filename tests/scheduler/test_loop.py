"""The scheduler loop, driven by an injected clock: no test here sleeps for real."""

from __future__ import annotations

import threading
import time

import pytest

from scheduler.loop import next_tick_at, run


@pytest.mark.parametrize(
    ("scheduled", "now", "interval_ms", "expected"),
    [
        (100.0, 100.0, 1000, 101.0),  # on time: the next slot
        (100.0, 100.4, 1000, 101.0),  # a short tick keeps the grid
        (100.0, 101.0, 1000, 101.0),  # the next slot is due right now
        (100.0, 102.5, 1000, 103.0),  # a slow tick skips 101 and 102
        (100.0, 99.0, 1000, 101.0),  # a clock going back never repeats a slot
        (0.0, 0.25, 100, 0.3),
    ],
)
def test_next_tick_at(scheduled, now, interval_ms, expected):
    assert next_tick_at(scheduled, now, interval_ms) == pytest.approx(expected)


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ticking(clock: FakeClock, stop: threading.Event, *, times: int, takes: float) -> list[float]:
    """Run the loop until ``times`` ticks, each advancing the clock by ``takes`` seconds."""
    seen: list[float] = []

    def tick(now: float) -> None:
        seen.append(now)
        clock.now += takes
        if len(seen) == times:
            stop.set()

    run(tick, clock=clock, stop=stop, interval_ms=1000)
    return seen


def test_ticks_follow_the_clock_once_per_interval():
    clock, stop = FakeClock(1000.0), threading.Event()

    assert ticking(clock, stop, times=4, takes=1.0) == [1000.0, 1001.0, 1002.0, 1003.0]


def test_slots_missed_by_a_slow_tick_are_skipped_not_replayed():
    clock, stop = FakeClock(1000.0), threading.Event()

    assert ticking(clock, stop, times=3, takes=3.0) == [1000.0, 1003.0, 1006.0]


def test_a_failing_tick_is_logged_and_the_loop_goes_on(caplog):
    clock, stop = FakeClock(50.0), threading.Event()
    seen: list[float] = []

    def tick(now: float) -> None:
        seen.append(now)
        clock.now += 1.0
        if len(seen) == 3:
            stop.set()
        if len(seen) == 1:
            raise ConnectionError("redis went away")

    assert run(tick, clock=clock, stop=stop) == 3
    assert seen == [50.0, 51.0, 52.0]
    assert "scheduler tick at 50.000 failed" in caplog.text


def test_a_set_stop_event_means_no_tick():
    stop = threading.Event()
    stop.set()

    assert run(lambda now: pytest.fail("ticked"), clock=FakeClock(0.0), stop=stop) == 0


def test_stop_wakes_the_loop_without_waiting_out_the_interval():
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()

    ticks = run(lambda now: None, stop=stop, interval_ms=60_000)

    assert ticks == 1
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("interval_ms", [0, -1])
def test_interval_must_be_positive(interval_ms):
    with pytest.raises(ValueError, match="interval_ms"):
        run(lambda now: None, stop=threading.Event(), interval_ms=interval_ms)
