"""Cron due-times: next fire, DST, misfire grace, catch-up cap and the Schedule heap; pure datetimes."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from scheduler.due import CronSpec, Schedule, next_fire, slots_to_fire

UTC = timezone.utc
NOW = datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def spec(expr: str = "* * * * *", index: int = 0, **fields) -> CronSpec:
    return CronSpec(key=("acme", 1, index), expr=expr, **fields)


def fires_on(expr: str, tz: str, day: tuple[int, int, int]) -> list[datetime]:
    """Every slot within one local calendar day, walked with next_fire (UTC)."""
    zone = ZoneInfo(tz)
    start = datetime(*day, tzinfo=zone).astimezone(UTC)
    end = (datetime(*day, tzinfo=zone) + timedelta(days=1)).astimezone(UTC)
    slots, cursor = [], start - timedelta(microseconds=1)
    while (cursor := next_fire(expr, tz, cursor)) < end:
        slots.append(cursor)
    return slots


def local(slots: list[datetime], tz: str) -> list[str]:
    return [slot.astimezone(ZoneInfo(tz)).strftime("%H:%M%z") for slot in slots]


# --- next_fire -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [
        ("* * * * *", "UTC", utc(2024, 6, 1, 12, 0, 0), utc(2024, 6, 1, 12, 1)),
        ("* * * * *", "UTC", utc(2024, 6, 1, 12, 0, 59, 999_000), utc(2024, 6, 1, 12, 1)),
        ("*/15 * * * *", "UTC", utc(2024, 6, 1, 12, 7), utc(2024, 6, 1, 12, 15)),
        ("0 9 * * 1-5", "UTC", utc(2024, 6, 1, 12, 0), utc(2024, 6, 3, 9, 0)),  # Sat -> Mon
        ("0 0 1 * *", "UTC", utc(2024, 1, 31, 0, 0), utc(2024, 2, 1, 0, 0)),
        ("0 0 29 2 *", "UTC", utc(2024, 3, 1), utc(2028, 2, 29)),
        ("@hourly", "UTC", utc(2024, 6, 1, 12, 0, 1), utc(2024, 6, 1, 13, 0)),
        ("* * * * * */10", "UTC", utc(2024, 6, 1, 12, 0, 0), utc(2024, 6, 1, 12, 0, 10)),
        ("* * * * * */10", "UTC", utc(2024, 6, 1, 12, 0, 9, 500_000), utc(2024, 6, 1, 12, 0, 10)),
        ("* * * * * *", "UTC", utc(2024, 6, 1, 12, 0, 0), utc(2024, 6, 1, 12, 0, 1)),
        ("30 2 * * * 15", "UTC", utc(2024, 6, 1, 2, 30, 15), utc(2024, 6, 2, 2, 30, 15)),
        ("0 9 * * *", "Asia/Seoul", utc(2024, 6, 1, 0, 0), utc(2024, 6, 2, 0, 0)),
        ("0 9 * * *", "Asia/Seoul", utc(2024, 5, 31, 23, 59), utc(2024, 6, 1, 0, 0)),
        ("0 9 * * *", "America/New_York", utc(2024, 1, 15), utc(2024, 1, 15, 14, 0)),  # EST
        ("0 9 * * *", "America/New_York", utc(2024, 7, 15), utc(2024, 7, 15, 13, 0)),  # EDT
    ],
    ids=[
        "minute-exact-slot-is-excluded",
        "minute-subsecond",
        "step",
        "weekday-skips-weekend",
        "month-start",
        "leap-day",
        "alias",
        "seconds-exact-slot-is-excluded",
        "seconds-subsecond",
        "every-second",
        "seconds-last-fixed",
        "seoul-exact",
        "seoul-just-before",
        "new-york-winter",
        "new-york-summer",
    ],
)
def test_next_fire(expr, tz, after, expected):
    # Given an expression, a zone and a moment; When the next slot is computed
    result = next_fire(expr, tz, after)

    # Then it is the first slot strictly after the moment, in UTC
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_next_fire_takes_any_aware_moment():
    # Given the same instant expressed in Seoul time
    after = utc(2024, 6, 1, 0, 0).astimezone(ZoneInfo("Asia/Seoul"))

    # When the next slot is computed
    result = next_fire("0 * * * *", "UTC", after)

    # Then the answer is the same UTC instant as for the UTC input
    assert result == utc(2024, 6, 1, 1, 0)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("expr", "tz", "after", "message"),
    [
        ("* * * * *", "UTC", datetime(2024, 6, 1), "naive"),
        ("61 * * * *", "UTC", NOW, "not a valid cron expression"),
        ("* * *", "UTC", NOW, "not a valid cron expression"),
        ("* * * * *", "Mars/Olympus", NOW, "unknown time zone"),
        ("0 0 30 2 *", "UTC", NOW, "has no slot after"),
    ],
    ids=["naive-datetime", "bad-field", "too-few-fields", "unknown-zone", "never-matches"],
)
def test_next_fire_rejects(expr, tz, after, message):
    # Given input the scheduler cannot work with; When / Then a ValueError says why
    with pytest.raises(ValueError, match=message):
        next_fire(expr, tz, after)


# --- DST -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "tz", "day", "expected"),
    [
        # Spring forward: 02:30 does not exist; croniter moves it to the end of the gap.
        ("30 2 * * *", "America/New_York", (2024, 3, 10), ["03:00-0400"]),
        ("30 2 * * *", "Europe/Berlin", (2024, 3, 31), ["03:00+0200"]),
        ("30 2 * * *", "America/New_York", (2024, 3, 11), ["02:30-0400"]),  # back to normal
        # Fall back: a repeated wall time fires once, at its first occurrence.
        ("30 1 * * *", "America/New_York", (2024, 11, 3), ["01:30-0400"]),
        ("30 2 * * *", "Europe/Berlin", (2024, 10, 27), ["02:30+0200"]),
        ("30 1 * * *", "America/New_York", (2024, 11, 4), ["01:30-0500"]),
        ("0 1-2 * * *", "America/New_York", (2024, 11, 3), ["01:00-0400", "02:00-0500"]),
        # Interval-like expressions fire in both runs of the repeated hour.
        (
            "*/30 1 * * *",
            "America/New_York",
            (2024, 11, 3),
            ["01:00-0400", "01:30-0400", "01:00-0500", "01:30-0500"],
        ),
        # No DST in Seoul: the same local time every day.
        ("30 2 * * *", "Asia/Seoul", (2024, 3, 10), ["02:30+0900"]),
        ("30 1 * * *", "Asia/Seoul", (2024, 11, 3), ["01:30+0900"]),
    ],
    ids=[
        "ny-spring-gap-fires-at-0300",
        "berlin-spring-gap-fires-at-0300",
        "ny-day-after-spring",
        "ny-fall-repeat-fires-once",
        "berlin-fall-repeat-fires-once",
        "ny-day-after-fall",
        "ny-fall-fixed-hour-list",
        "ny-fall-interval-both-runs",
        "seoul-spring-date",
        "seoul-fall-date",
    ],
)
def test_daily_fires_across_dst(expr, tz, day, expected):
    # Given a trigger in a zone and a local day; When its slots that day are walked
    slots = fires_on(expr, tz, day)

    # Then it fires at the expected local times
    assert local(slots, tz) == expected


@pytest.mark.parametrize(
    ("tz", "day", "count"),
    [
        ("America/New_York", (2024, 11, 3), 25),
        ("Europe/Berlin", (2024, 10, 27), 25),
        ("America/New_York", (2024, 3, 10), 23),
        ("Europe/Berlin", (2024, 3, 31), 23),
        ("Asia/Seoul", (2024, 11, 3), 24),
    ],
    ids=["ny-fall", "berlin-fall", "ny-spring", "berlin-spring", "seoul"],
)
def test_hourly_fires_once_per_real_hour(tz, day, count):
    # Given an hourly trigger; When its slots over a (DST) day are walked
    slots = fires_on("0 * * * *", tz, day)

    # Then there is one slot per real hour, strictly increasing, an hour apart
    assert len(slots) == count
    assert len(set(slots)) == count
    assert all(later - earlier == timedelta(hours=1) for earlier, later in pairwise(slots))


@pytest.mark.parametrize(
    ("expr", "tz", "day"),
    [
        (expr, tz, day)
        for tz, days in [
            ("America/New_York", [(2024, 3, 10), (2024, 11, 3)]),
            ("Europe/Berlin", [(2024, 3, 31), (2024, 10, 27)]),
        ]
        for day in days
        for expr in ["30 2 * * *", "30 1 * * *", "0 * * * *", "*/20 * * * *", "15 1,2,3 * * *"]
    ],
)
def test_next_fire_agrees_from_any_point(expr, tz, day):
    # Given every slot around a DST change, walked forward
    zone = ZoneInfo(tz)
    start = (datetime(*day, tzinfo=zone) - timedelta(hours=6)).astimezone(UTC)
    end = start + timedelta(hours=36)
    walked = [next_fire(expr, tz, start)]
    while walked[-1] <= end + timedelta(days=1):
        walked.append(next_fire(expr, tz, walked[-1]))
    queries = [end - k * timedelta(minutes=7, seconds=13) for k in range(299)]

    # When next_fire is asked from points in between, latest first (no cached window helps)
    answers = [next_fire(expr, tz, query) for query in queries]

    # Then each answer is the first walked slot after the point
    assert answers == [walked[bisect.bisect_right(walked, query)] for query in queries]


# --- slots_to_fire ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "last_slot", "now", "expected"),
    [
        (spec(), None, NOW, []),
        (spec(catch_up=True), None, NOW, []),
        (spec(), utc(2024, 6, 1, 11, 59), utc(2024, 6, 1, 12, 0, 30), [utc(2024, 6, 1, 12, 0)]),
        (spec(), utc(2024, 6, 1, 11, 59), utc(2024, 6, 1, 12, 1, 0), [utc(2024, 6, 1, 12, 1)]),
        (spec(), utc(2024, 6, 1, 12, 0), utc(2024, 6, 1, 12, 0, 50), []),
        (spec(), utc(2024, 6, 1, 12, 0), utc(2024, 6, 1, 12, 0), []),
        (spec(), utc(2024, 6, 1, 12, 5), utc(2024, 6, 1, 12, 0), []),
        (spec("0 * * * *"), utc(2024, 6, 1, 11), utc(2024, 6, 1, 12, 0, 30), [utc(2024, 6, 1, 12)]),
        (spec("0 * * * *"), utc(2024, 6, 1, 11), utc(2024, 6, 1, 12, 1, 30), []),
        (spec("0 * * * *"), utc(2024, 6, 1, 11), utc(2024, 6, 1, 12, 1, 0), [utc(2024, 6, 1, 12)]),
        (
            spec("0 * * * *", misfire_grace_seconds=120),
            utc(2024, 6, 1, 11),
            utc(2024, 6, 1, 12, 1, 30),
            [utc(2024, 6, 1, 12)],
        ),
        (
            spec("0 * * * *", misfire_grace_seconds=0),
            utc(2024, 6, 1, 11),
            utc(2024, 6, 1, 12, 0, 0, 1),
            [],
        ),
    ],
    ids=[
        "never-fired-fires-nothing",
        "never-fired-even-with-catch-up",
        "30s-late-within-grace",
        "on-time",
        "no-slot-since-last",
        "now-is-last-slot",
        "clock-went-back",
        "hourly-30s-late-fires",
        "hourly-90s-late-dropped",
        "hourly-exactly-grace-late-fires",
        "longer-grace",
        "zero-grace-any-lateness-drops",
    ],
)
def test_slots_to_fire_misfire_grace(cron, last_slot, now, expected):
    # Given a trigger, its last fired slot and the time now; When the due slots are taken
    result = slots_to_fire(cron, last_slot, now)

    # Then only slots within the grace window fire
    assert result == expected


def test_without_catch_up_a_long_downtime_fires_only_the_latest_slot():
    # Given a per-minute trigger last fired 1000 minutes ago, now 30 s after a slot
    last_slot = utc(2024, 6, 1, 12, 0) - timedelta(minutes=1000)

    # When the due slots are taken
    result = slots_to_fire(spec(), last_slot, NOW)

    # Then only the most recent slot fires
    assert result == [utc(2024, 6, 1, 12, 0)]


@pytest.mark.parametrize(
    ("limit", "expected_count"),
    [(None, 10), (10, 10), (3, 3), (1, 1), (2000, 1000)],
    ids=["default-limit-10", "limit-10", "limit-3", "limit-1", "limit-above-missed"],
)
def test_catch_up_fires_the_most_recent_slots_up_to_the_cap(limit, expected_count):
    # Given a per-minute catch-up trigger after 1000 minutes of downtime
    fields = {} if limit is None else {"catch_up_limit": limit}
    cron = spec(catch_up=True, **fields)
    last_slot = utc(2024, 6, 1, 12, 0) - timedelta(minutes=1000)

    # When the due slots are taken
    result = slots_to_fire(cron, last_slot, NOW)

    # Then the most recent ones fire, oldest first, at most the cap
    newest = utc(2024, 6, 1, 12, 0)
    assert result == [newest - timedelta(minutes=k) for k in reversed(range(expected_count))]


def test_catch_up_ignores_grace_and_fires_fewer_when_fewer_were_missed():
    # Given an hourly catch-up trigger that missed two slots, the last 50 minutes ago
    cron = spec("0 * * * *", catch_up=True)

    # When the due slots are taken
    result = slots_to_fire(cron, utc(2024, 6, 1, 10), utc(2024, 6, 1, 12, 50))

    # Then both fire
    assert result == [utc(2024, 6, 1, 11), utc(2024, 6, 1, 12)]


def test_catch_up_after_years_of_downtime_is_bounded():
    # Given a per-second catch-up trigger last fired ten years ago (~3e8 missed slots)
    cron = spec("* * * * * *", catch_up=True)

    # When the due slots are taken
    result = slots_to_fire(cron, utc(2014, 6, 1), NOW)

    # Then only the ten most recent fire, without iterating the whole gap
    assert result == [NOW - timedelta(seconds=k) for k in reversed(range(10))]


def test_catch_up_across_fall_back_skips_the_repeated_wall_time():
    # Given a daily 01:30 New York trigger with catch-up, down for the fall-back week
    cron = spec("30 1 * * *", tz="America/New_York", catch_up=True, catch_up_limit=4)
    now = datetime(2024, 11, 5, 12, tzinfo=ZoneInfo("America/New_York"))

    # When the due slots are taken
    result = slots_to_fire(cron, utc(2024, 10, 1), now)

    # Then each day fires once, including the fall-back day
    assert local(result, "America/New_York") == [
        "01:30-0400",  # Nov 2
        "01:30-0400",  # Nov 3, first of the two 01:30s
        "01:30-0500",  # Nov 4
        "01:30-0500",  # Nov 5
    ]
    assert [slot.day for slot in result] == [2, 3, 4, 5]


@pytest.mark.parametrize(
    "fields",
    [{"catch_up_limit": 0}, {"misfire_grace_seconds": -1}],
    ids=["zero-cap", "negative-grace"],
)
def test_cron_spec_rejects_impossible_limits(fields):
    # Given limits no trigger can have; When / Then building the spec fails
    with pytest.raises(ValueError, match="expected"):
        spec(**fields)


# --- Schedule --------------------------------------------------------------------------


def test_empty_schedule_has_nothing_due():
    # Given an empty schedule
    schedule = Schedule()

    # When it is asked what is due
    result = schedule.due(NOW)

    # Then nothing is, and nothing ever will be
    assert result == []
    assert schedule.next_due_at() is None
    assert len(schedule) == 0
    assert schedule.keys() == set()


def test_due_returns_slots_of_several_specs_oldest_first():
    # Given three triggers armed at different slots
    schedule = Schedule()
    start = utc(2024, 6, 1, 11, 50, 30)
    for index, expr in [(1, "0 * * * *"), (2, "*/15 * * * *"), (3, "* * * * *")]:
        schedule.upsert(spec(expr, index), last_slot=None, now=start)

    # When the clock steps minute by minute up to 12:00:00 exactly
    fired = []
    for minute in range(1, 11):
        fired += schedule.due(utc(2024, 6, 1, 11, 50) + timedelta(minutes=minute))

    # Then every slot fired once, in time order, the three 12:00 slots last
    assert [slot for _, slot in fired] == sorted(slot for _, slot in fired)
    assert [(cron.key[2], slot) for cron, slot in fired[:9]] == [
        (3, utc(2024, 6, 1, 11, minute)) for minute in range(51, 60)
    ]
    assert {(cron.key[2], slot) for cron, slot in fired[9:]} == {
        (1, utc(2024, 6, 1, 12)),
        (2, utc(2024, 6, 1, 12)),
        (3, utc(2024, 6, 1, 12)),
    }
    assert len(fired) == 12


def test_due_orders_pairs_by_slot_across_specs():
    # Given three triggers, due at 12:00, 12:15 and 12:10, all missed and caught up at once
    schedule = Schedule()
    start = utc(2024, 6, 1, 11, 59, 30)
    crons = [
        spec("0 12 * * *", 1, catch_up=True),
        spec("15 12 * * *", 2, catch_up=True),
        spec("10 12 * * *", 3, catch_up=True),
    ]
    for cron in crons:
        schedule.upsert(cron, last_slot=None, now=start)

    # When due is asked after all three slots
    result = schedule.due(utc(2024, 6, 1, 12, 20))

    # Then they come back oldest first
    assert [(cron.key[2], slot) for cron, slot in result] == [
        (1, utc(2024, 6, 1, 12, 0)),
        (3, utc(2024, 6, 1, 12, 10)),
        (2, utc(2024, 6, 1, 12, 15)),
    ]


def test_due_rearms_and_never_returns_a_slot_twice():
    # Given a per-minute trigger added at 12:00:30
    schedule = Schedule()
    schedule.upsert(spec(), last_slot=None, now=NOW)

    # When due is asked twice at the slot and then before the next one
    first = schedule.due(utc(2024, 6, 1, 12, 1, 0, 200_000))
    again = schedule.due(utc(2024, 6, 1, 12, 1, 0, 900_000))
    between = schedule.due(utc(2024, 6, 1, 12, 1, 59))

    # Then the slot fired once and the trigger is armed at the next one
    assert [slot for _, slot in first] == [utc(2024, 6, 1, 12, 1)]
    assert again == between == []
    assert schedule.next_due_at() == utc(2024, 6, 1, 12, 2)


def test_nothing_due_before_the_first_slot():
    # Given 10,000 triggers, none due before 12:01
    schedule = Schedule()
    for index in range(10_000):
        schedule.upsert(spec("* * * * *", index), last_slot=None, now=NOW)

    # When due is asked just before the first slot
    result = schedule.due(utc(2024, 6, 1, 12, 0, 59, 999_000))

    # Then nothing fires and all stay armed
    assert result == []
    assert len(schedule) == 10_000
    assert schedule.next_due_at() == utc(2024, 6, 1, 12, 1)


def test_replacing_a_spec_with_a_new_expression_takes_effect():
    # Given an hourly trigger
    schedule = Schedule()
    schedule.upsert(spec("0 * * * *"), last_slot=None, now=NOW)

    # When it is replaced by a per-minute one with a new version
    schedule.upsert(spec("* * * * *", version=2), last_slot=None, now=NOW)
    result = schedule.due(utc(2024, 6, 1, 12, 1, 5))

    # Then the new expression and version fire, and there is still one trigger
    assert [(cron.expr, cron.version, slot) for cron, slot in result] == [
        ("* * * * *", 2, utc(2024, 6, 1, 12, 1))
    ]
    assert len(schedule) == 1
    assert schedule.next_due_at() == utc(2024, 6, 1, 12, 2)


def test_replacing_a_spec_with_the_same_expression_keeps_its_slot():
    # Given a per-minute trigger armed at 12:01, reloaded at 12:01:00.5 before due ran
    schedule = Schedule()
    schedule.upsert(spec(), last_slot=None, now=NOW)

    # When the same expression comes back with a new version, then due runs
    schedule.upsert(spec(version=7), last_slot=None, now=utc(2024, 6, 1, 12, 1, 0, 500_000))
    result = schedule.due(utc(2024, 6, 1, 12, 1, 1))

    # Then the 12:01 slot is not lost, and it carries the new version
    assert [(cron.version, slot) for cron, slot in result] == [(7, utc(2024, 6, 1, 12, 1))]


def test_removed_specs_never_come_back():
    # Given two triggers, one replaced many times and then removed
    schedule = Schedule()
    kept, dropped = spec("* * * * *", 1), spec("* * * * *", 2)
    schedule.upsert(kept, last_slot=None, now=NOW)
    for version in range(500):
        schedule.upsert(spec("*/2 * * * *", 2, version=version), last_slot=None, now=NOW)
    schedule.upsert(dropped, last_slot=None, now=NOW)

    # When it is removed (twice: the second is a no-op) and time runs for an hour
    schedule.remove(dropped.key)
    schedule.remove(dropped.key)
    fired = [schedule.due(NOW + timedelta(minutes=minute)) for minute in range(1, 61)]

    # Then only the kept trigger ever fires
    assert {cron.key for batch in fired for cron, _ in batch} == {kept.key}
    assert sum(len(batch) for batch in fired) == 60
    assert schedule.keys() == {kept.key}
    assert len(schedule) == 1


def test_a_stalled_process_fires_only_the_latest_slot_within_grace():
    # Given a per-minute trigger armed at 12:01
    schedule = Schedule()
    schedule.upsert(spec(), last_slot=None, now=NOW)

    # When the process wakes at 12:30:20, 29 slots late
    result = schedule.due(utc(2024, 6, 1, 12, 30, 20))

    # Then only 12:30 fires, and the trigger is armed at 12:31
    assert [slot for _, slot in result] == [utc(2024, 6, 1, 12, 30)]
    assert schedule.next_due_at() == utc(2024, 6, 1, 12, 31)


def test_a_stalled_process_beyond_grace_fires_nothing():
    # Given an hourly trigger armed at 13:00
    schedule = Schedule()
    schedule.upsert(spec("0 * * * *"), last_slot=None, now=NOW)

    # When the process wakes at 15:01:30, the latest slot 90 s old
    result = schedule.due(utc(2024, 6, 1, 15, 1, 30))

    # Then nothing fires and the trigger is armed at 16:00
    assert result == []
    assert schedule.next_due_at() == utc(2024, 6, 1, 16)


def test_a_stalled_process_catches_up_to_the_cap():
    # Given a per-minute catch-up trigger (cap 10) armed at 12:01
    schedule = Schedule()
    schedule.upsert(spec(catch_up=True), last_slot=None, now=NOW)

    # When the process wakes 1000 minutes later
    result = schedule.due(NOW + timedelta(minutes=1000))

    # Then the ten most recent slots fire, oldest first
    newest = utc(2024, 6, 1, 12, 0) + timedelta(minutes=1000)
    assert [slot for _, slot in result] == [newest - timedelta(minutes=k) for k in range(9, -1, -1)]
    assert schedule.next_due_at() == newest + timedelta(minutes=1)


def test_a_late_single_slot_with_catch_up_still_fires():
    # Given an hourly catch-up trigger armed at 13:00
    schedule = Schedule()
    schedule.upsert(spec("0 * * * *", catch_up=True), last_slot=None, now=NOW)

    # When the process wakes at 13:45, past the grace but before the next slot
    result = schedule.due(utc(2024, 6, 1, 13, 45))

    # Then the missed slot fires
    assert [slot for _, slot in result] == [utc(2024, 6, 1, 13)]


def test_a_restart_resumes_from_the_last_fired_slot():
    # Given a per-minute trigger whose last fire, before a restart, was at 11:58
    schedule = Schedule()

    # When it is loaded with that slot at 12:00:30 and due runs at once
    schedule.upsert(spec(catch_up=True), last_slot=utc(2024, 6, 1, 11, 58), now=NOW)
    result = schedule.due(NOW)

    # Then the slots missed while down fire, and none before the last fire
    assert [slot for _, slot in result] == [utc(2024, 6, 1, 11, 59), utc(2024, 6, 1, 12, 0)]


def test_a_spec_that_never_fires_stays_scheduled_but_never_due():
    # Given a trigger for 30 February
    schedule = Schedule()

    # When it is added and time passes
    schedule.upsert(spec("0 0 30 2 *"), last_slot=None, now=NOW)
    result = schedule.due(NOW + timedelta(days=400))

    # Then it is known, never armed, never due
    assert result == []
    assert schedule.keys() == {("acme", 1, 0)}
    assert schedule.next_due_at() is None


def test_schedule_rejects_naive_datetimes():
    # Given a schedule; When a naive "now" is passed; Then it is refused
    schedule = Schedule()
    with pytest.raises(ValueError, match="naive"):
        schedule.upsert(spec(), last_slot=None, now=datetime(2024, 6, 1, 12))
    with pytest.raises(ValueError, match="naive"):
        schedule.due(datetime(2024, 6, 1, 12))
