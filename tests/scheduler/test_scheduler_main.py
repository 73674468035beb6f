"""The scheduler process records each tick in Redis and stops when asked."""

from __future__ import annotations

import threading
import time

import redis

from scheduler.main import main
from shared.bootstrap import prepare
from shared.heartbeat import last_tick_key


def test_ticks_are_recorded_in_redis_until_stopped(make_settings):
    settings = make_settings()
    prepare(settings)
    client = redis.Redis.from_url(settings.resolved_redis_url)
    stop = threading.Event()
    thread = threading.Thread(
        target=main, args=(settings,), kwargs={"stop": stop, "interval_ms": 20}
    )

    thread.start()
    deadline = time.monotonic() + 5
    while client.get(last_tick_key(settings)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)

    assert not thread.is_alive()
    recorded = float(client.get(last_tick_key(settings)))
    assert abs(recorded - time.time()) < 5
    client.delete(last_tick_key(settings))
    client.close()


def test_the_clock_decides_what_is_recorded(make_settings):
    settings = make_settings()
    prepare(settings)
    client = redis.Redis.from_url(settings.resolved_redis_url)
    stop = threading.Event()
    times = iter([1700000000.5] * 3)

    def clock() -> float:
        value = next(times, None)
        if value is None:
            stop.set()
            return 1700000000.5
        return value

    assert main(settings, clock=clock, stop=stop) == 0
    assert client.get(last_tick_key(settings)) == b"1700000000.5"
    client.delete(last_tick_key(settings))
    client.close()
