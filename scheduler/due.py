"""Cron due-times: which slots of which triggers to fire at ``now``. Pure: no I/O, no clock.

Every time in and out of this module is a timezone-aware datetime in UTC; each trigger's
expression is evaluated in its own IANA time zone, so a daily ``30 2 * * *`` means 02:30
on the local wall clock, winter and summer alike.

Daylight saving time, on top of croniter's own handling:

- Spring forward: a wall time that does not exist fires once, at the first minute after
  the gap (``30 2 * * *`` fires at 03:00 local on that day). Interval-like expressions
  simply have fewer slots that day (hourly: 23).
- Fall back: a *fixed-time* expression (minute, hour and seconds fields all without a
  leading ``*``) fires at the first of the two instants of a repeated wall time only,
  as Vixie cron does; croniter alone would fire ``30 1 * * *`` twice in New York.
  Interval-like expressions (``0 * * * *``, ``*/5 1 * * *``) fire on every real
  occurrence: hourly fires 25 times that day.
"""

from __future__ import annotations

import copy
import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadDateError

__all__ = ["CronSpec", "Schedule", "next_fire", "slots_to_fire"]

UTC = timezone.utc
#: Parsed expressions, and (expression, time zone) pairs, kept; one parse costs ~0.35 ms.
PARSE_CACHE_SIZE = 16_384
#: Stale heap entries tolerated, beyond one per live trigger, before the heap is rebuilt.
HEAP_SLACK = 64


@dataclass(frozen=True)
class CronSpec:
    """One cron trigger of one workflow, as the schedule needs it.

    ``key`` and ``version`` are opaque here and handed back with each due slot.
    ``misfire_grace_seconds`` is how late (in seconds) a slot may still fire without
    catch-up; with ``catch_up`` every missed slot fires, at most ``catch_up_limit``.
    """

    key: tuple[str, int, int]
    expr: str
    tz: str = "UTC"
    misfire_grace_seconds: int = 60
    catch_up: bool = False
    catch_up_limit: int = 10
    version: int = 0

    def __post_init__(self) -> None:
        if self.misfire_grace_seconds < 0:
            raise ValueError(
                f"misfire_grace_seconds={self.misfire_grace_seconds!r} for trigger {self.key!r}: "
                f"expected 0 or more seconds"
            )
        if self.catch_up_limit < 1:
            raise ValueError(
                f"catch_up_limit={self.catch_up_limit!r} for trigger {self.key!r}: expected 1 or more"
            )


def next_fire(expr: str, tz: str, after: datetime) -> datetime:
    """The first slot of ``expr`` in zone ``tz`` strictly after ``after`` (UTC in, UTC out).

    Raises ValueError for an expression or zone croniter rejects, and for one that never
    fires again (``0 0 30 2 *``).
    """
    return _cron(expr, tz).next_after(_utc(after, "after"))


def slots_to_fire(spec: CronSpec, last_slot: datetime | None, now: datetime) -> list[datetime]:
    """The slots in ``(last_slot, now]`` to fire at ``now``, oldest first.

    ``last_slot`` None (never fired, or a new trigger) fires nothing: a trigger starts from
    now. Without catch-up only the most recent slot fires, and only if it is at most
    ``misfire_grace_seconds`` old. With catch-up the most recent ``catch_up_limit`` slots
    fire. Either way the cost is about twice that count in croniter calls, however long
    the downtime was.
    """
    now = _utc(now, "now")
    if last_slot is None:
        return []
    last_slot = _utc(last_slot, "last_slot")
    if last_slot >= now:
        return []
    cron = _cron(spec.expr, spec.tz)
    if spec.catch_up:
        return cron.recent(last_slot, now, spec.catch_up_limit)
    slots = cron.recent(last_slot, now, 1)
    if slots and now - slots[-1] <= timedelta(seconds=spec.misfire_grace_seconds):
        return slots
    return []


class Schedule:
    """Next-fire times of many triggers in a heap; O(log n) per change; due(now) pops what is due.

    Each trigger remembers the point after which its slots are pending (its last fired
    slot, or the moment it was added) and is armed at its next slot. Replacing or
    removing a trigger leaves its old heap entry behind, marked stale by a generation
    number; stale entries are skipped when they surface and the heap is rebuilt when
    they pile up. One loop owns a schedule: it is not safe to share between threads.
    """

    def __init__(self) -> None:
        self._live: dict[tuple[str, int, int], _Armed] = {}
        self._heap: list[tuple[float, int, tuple[str, int, int]]] = []
        self._generation = 0

    def upsert(self, spec: CronSpec, *, last_slot: datetime | None, now: datetime) -> None:
        """Add ``spec``, or replace the trigger with the same key.

        Slots after ``last_slot`` are pending (subject to the misfire rules at the next
        :meth:`due`); without ``last_slot`` the trigger starts from ``now``. Replacing a
        trigger whose ``expr`` and ``tz`` are unchanged keeps its place in time (it only
        moves forward to ``last_slot`` if that is later), so reloading an unchanged or
        re-versioned workflow neither loses nor repeats a slot.
        """
        now = _utc(now, "now")
        after = _utc(last_slot, "last_slot") if last_slot is not None else None
        current = self._live.get(spec.key)
        if current is not None and (current.spec.expr, current.spec.tz) == (spec.expr, spec.tz):
            current.spec = spec
            if after is None or after <= current.after:
                return
        after = after if after is not None else now
        self._arm(spec, after, _cron(spec.expr, spec.tz).next_after_or_none(after))

    def remove(self, key: tuple[str, int, int]) -> None:
        """Forget trigger ``key``; it never comes back unless upserted again. Unknown keys are ignored."""
        if self._live.pop(key, None) is not None:
            self._compact()

    def due(self, now: datetime) -> list[tuple[CronSpec, datetime]]:
        """Every ``(spec, slot)`` to fire at ``now``, oldest slot first; re-arms each trigger.

        A trigger whose slot was missed by more than one slot (the process stalled) gets
        the :func:`slots_to_fire` treatment: the most recent slot if within grace, or with
        catch-up at most ``catch_up_limit`` slots. With nothing due this only peeks at the
        heap.
        """
        now = _utc(now, "now")
        now_ts = now.timestamp()
        heap = self._heap
        popped: list[_Armed] = []
        while heap and heap[0][0] <= now_ts:
            _, generation, key = heapq.heappop(heap)
            armed = self._live.get(key)
            if armed is not None and armed.generation == generation:
                popped.append(armed)
        fired: list[tuple[CronSpec, datetime]] = []
        for armed in popped:
            spec, slot = armed.spec, armed.slot
            cron = _cron(spec.expr, spec.tz)
            following = cron.next_after_or_none(slot)
            if following is None or following > now:
                # The usual case: exactly one slot is due, and arming the next one costs
                # the only croniter call.
                late = now - slot
                if spec.catch_up or late <= timedelta(seconds=spec.misfire_grace_seconds):
                    fired.append((spec, slot))
                self._arm(spec, slot, following)
            else:
                slots = slots_to_fire(spec, armed.after, now)
                fired.extend((spec, missed) for missed in slots)
                after = slots[-1] if slots else now
                self._arm(spec, after, cron.next_after_or_none(after))
        fired.sort(key=lambda pair: pair[1])
        return fired

    def next_due_at(self) -> datetime | None:
        """The earliest armed slot (UTC), or None when no trigger will fire again."""
        heap = self._heap
        while heap:
            _, generation, key = heap[0]
            armed = self._live.get(key)
            if armed is not None and armed.generation == generation:
                return armed.slot
            heapq.heappop(heap)
        return None

    def __len__(self) -> int:
        return len(self._live)

    def keys(self) -> set[tuple[str, int, int]]:
        """The keys of every scheduled trigger, armed or not."""
        return set(self._live)

    def _arm(self, spec: CronSpec, after: datetime, slot: datetime | None) -> None:
        # A trigger with no slot left (its expression never matches again) stays
        # scheduled but is never armed.
        self._generation += 1
        self._live[spec.key] = _Armed(spec, after, slot, self._generation)
        if slot is not None:
            heapq.heappush(self._heap, (slot.timestamp(), self._generation, spec.key))
            self._compact()

    def _compact(self) -> None:
        if len(self._heap) <= 2 * len(self._live) + HEAP_SLACK:
            return
        self._heap = [
            (armed.slot.timestamp(), armed.generation, key)
            for key, armed in self._live.items()
            if armed.slot is not None
        ]
        heapq.heapify(self._heap)


class _Armed:
    """A scheduled trigger: its spec, the point after which slots are pending, its next slot."""

    __slots__ = ("after", "generation", "slot", "spec")

    def __init__(
        self, spec: CronSpec, after: datetime, slot: datetime | None, generation: int
    ) -> None:
        self.spec = spec
        self.after = after
        self.slot = slot
        self.generation = generation


class _Cron:
    """A parsed expression in one zone, with the last answered window ``[after, slot)``.

    Slots form a fixed set, so if the first slot after ``a`` is ``s``, it is also the
    first slot after any point in ``[a, s)``: many triggers sharing an expression, armed
    at the same moment or re-armed after the same slot, cost one croniter call.
    """

    def __init__(self, expr: str, tz: str) -> None:
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError) as e:
            raise ValueError(f"unknown time zone {tz!r}; use an IANA name like 'Asia/Seoul'") from e
        self.expr = expr
        self._parsed = _parse(expr)
        fields = self._parsed.expressions
        clocked = [fields[0], fields[1]] + ([fields[5]] if len(fields) > 5 else [])
        self.fixed_time = not any(field.startswith("*") for field in clocked)
        self._window: tuple[datetime, datetime] | None = None

    def next_after(self, after: datetime) -> datetime:
        window = self._window
        if window is not None and window[0] <= after < window[1]:
            return window[1]
        # A copy per call keeps the cached parse free of shared cursor state.
        walker = copy.copy(self._parsed)
        try:
            slot = self._skip_repeat(walker, walker.get_next(datetime, after.astimezone(self.zone)))
        except CroniterBadDateError as e:
            raise ValueError(
                f"cron expression {self.expr!r} has no slot after {after.isoformat()}"
            ) from e
        self._window = (after, slot)
        return slot

    def next_after_or_none(self, after: datetime) -> datetime | None:
        try:
            return self.next_after(after)
        except ValueError:
            return None

    def recent(self, after: datetime, now: datetime, count: int) -> list[datetime]:
        """The last ``count`` slots in ``(after, now]``, oldest first, in O(count) croniter calls."""
        back = count + 1
        while True:
            start = self._back(now, back, after)
            slots: list[datetime] = []
            cursor = self.next_after_or_none(start)
            while cursor is not None and cursor <= now:
                slots.append(cursor)
                cursor = self.next_after_or_none(cursor)
            # Walking back with get_prev only finds where to start; the slots themselves
            # come from next_after, so both directions agree on what a slot is. Should
            # skipped repeats leave too few, walk further back.
            if len(slots) >= count or start <= after:
                return slots[-count:]
            back *= 2

    def _back(self, now: datetime, steps: int, floor: datetime) -> datetime:
        """The ``steps``-th slot before ``now``, or ``floor`` if that is reached first."""
        walker = copy.copy(self._parsed)
        walker.set_current(now.astimezone(self.zone), force=True)
        point = floor
        for _ in range(steps):
            try:
                point = walker.get_prev(datetime).astimezone(UTC)
            except CroniterBadDateError:
                return floor
            if point <= floor:
                return floor
        return point

    def _skip_repeat(self, walker: croniter, slot: datetime) -> datetime:
        slot = slot.astimezone(UTC)
        # The second run of a repeated wall time (fold=1 after a fall-back) is not a new
        # slot for a fixed-time expression: it fired an hour ago.
        while self.fixed_time and slot.astimezone(self.zone).fold:
            slot = walker.get_next(datetime).astimezone(UTC)
        return slot


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _cron(expr: str, tz: str) -> _Cron:
    return _Cron(expr, tz)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse(expr: str) -> croniter:
    # Parsing is most of croniter's cost and does not depend on the zone, which each
    # call brings with its start time.
    try:
        return croniter(expr, 0)
    except Exception as e:  # croniter raises more than its own errors for malformed input
        raise ValueError(f"{expr!r} is not a valid cron expression: {e}") from e


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}={moment!r} is naive; pass a timezone-aware datetime in UTC")
    return moment.astimezone(UTC)
