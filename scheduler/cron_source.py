"""Which cron triggers exist: loads enabled workflows' cron triggers and notices changes cheaply.

Each tick asks the database one aggregate question (how many workflows, newest
change); only when the answer moves does it read the (id, version, enabled) of
every workflow and re-parse just the ones whose version or state changed.

Parsing runs on a background thread, a chunk of workflows at a time: a large workflow,
or thousands changed at once, can take seconds to parse, and the tick must go on firing
the other triggers and reconciling meanwhile. A refresh waits for the parse at most
``parse_wait_ms``; what is not parsed by then is scheduled by a later tick, and the
misfire rules (from each trigger's last fired slot) decide what it still fires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import datetime, timezone

from peewee import fn

from scheduler.due import CronSpec, Schedule
from shared.db import connection
from shared.domain.workflow_spec import WorkflowSpec
from shared.engine.specs import spec_of
from shared.models import CronState, Workflow, WorkflowVersion

log = logging.getLogger(__name__)

#: Longest one refresh waits for changed workflows to be parsed, in milliseconds.
PARSE_WAIT_MS = 500
#: Workflows read and parsed by one background job.
PARSE_CHUNK = 500


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class Loaded:
    """One workflow's current version, parsed, with each trigger's last fired slot."""

    workflow_pk: int
    tenant_id: str
    version: int
    spec: WorkflowSpec
    last_slots: dict[int, datetime]


def load_workflows(workflow_pks: list[int]) -> list[Loaded]:
    """Read and parse the current versions of ``workflow_pks`` (own connection; any thread).

    A version that no longer parses is logged and left out, so one bad row does not keep
    the others from being scheduled.
    """
    loaded = []
    with connection():
        rows = (
            WorkflowVersion.select(WorkflowVersion, Workflow.id, Workflow.tenant)
            .join(
                Workflow,
                on=(
                    (WorkflowVersion.workflow == Workflow.id)
                    & (WorkflowVersion.version == Workflow.version)
                ),
            )
            .where(Workflow.id.in_(workflow_pks))
        )
        states: dict[int, dict[int, datetime]] = {}
        for state in CronState.select().where(CronState.workflow.in_(workflow_pks)):
            states.setdefault(state.workflow_id, {})[state.trigger_index] = _aware(state.last_slot)
        for version in rows:
            try:
                spec = spec_of(version)
            except Exception:
                log.exception(
                    "workflow %d version %d does not parse", version.workflow_id, version.version
                )
                continue
            loaded.append(
                Loaded(
                    version.workflow_id,
                    version.workflow.tenant_id,
                    version.version,
                    spec,
                    states.get(version.workflow_id, {}),
                )
            )
    return loaded


def _in_background(work: Callable[[], list[Loaded]]) -> Future:
    """``work()`` on a daemon thread (a parse never holds up the process's exit)."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(work())
            except BaseException as error:  # handed to the tick, which logs and retries
                future.set_exception(error)

    threading.Thread(target=run, name="cron-parse", daemon=True).start()
    return future


class CronSource:
    """Keeps a Schedule in step with the workflows table."""

    def __init__(self, schedule: Schedule, *, parse_wait_ms: int = PARSE_WAIT_MS) -> None:
        self.schedule = schedule
        self.parse_wait_ms = parse_wait_ms
        self.known: dict[int, tuple[int, bool]] = {}  # workflow pk -> (version, enabled)
        self.keys_of: dict[int, set[tuple[str, int, int]]] = {}
        self.specs: dict[int, WorkflowSpec] = {}  # workflow pk -> parsed current version
        self.fingerprint: tuple | None = None
        self._to_parse: set[int] = set()  # enabled workflows changed and not yet parsed
        self._parsing: tuple[list[int], Future] | None = None

    @property
    def pending(self) -> int:
        """Changed workflows whose triggers are not scheduled yet (queued or being parsed)."""
        return len(self._to_parse) + (len(self._parsing[0]) if self._parsing else 0)

    def refresh(self, now: datetime) -> int:
        """Bring the schedule up to date, waiting for parses at most ``parse_wait_ms``.

        Returns how many workflows were noticed as changed or dropped.
        """
        noticed = self._notice_changes(now)
        deadline = time.monotonic() + self.parse_wait_ms / 1000
        while self._start_parsing():
            _, future = self._parsing  # type: ignore[misc]
            wait_for([future], timeout=max(0.0, deadline - time.monotonic()))
            if not future.done() or not self._apply_parsed(now):
                break
        return noticed

    def _notice_changes(self, now: datetime) -> int:
        fingerprint = tuple(
            Workflow.select(
                fn.COUNT(Workflow.id), fn.MAX(Workflow.updated_at), fn.SUM(Workflow.version)
            )
            .tuples()
            .first()
        )
        if fingerprint == self.fingerprint:
            return 0
        current = {
            row[0]: (row[1], bool(row[2]))
            for row in Workflow.select(Workflow.id, Workflow.version, Workflow.enabled).tuples()
        }
        changed = [pk for pk, state in current.items() if self.known.get(pk) != state]
        gone = [pk for pk in self.known if pk not in current]
        for pk in gone + changed:
            self.specs.pop(pk, None)
            self._to_parse.discard(pk)
            for key in self.keys_of.pop(pk, set()):
                self.schedule.remove(key)
        self._to_parse.update(pk for pk in changed if current[pk][1])
        self.known = current
        self.fingerprint = fingerprint
        if changed or gone:
            log.info(
                "cron triggers: %d workflow(s) changed, %d removed, %d to parse",
                len(changed),
                len(gone),
                self.pending,
            )
        return len(changed) + len(gone)

    def _start_parsing(self) -> bool:
        """Whether a parse is running, after starting the next chunk if none was."""
        if self._parsing is None and self._to_parse:
            chunk = sorted(self._to_parse)[:PARSE_CHUNK]
            self._to_parse.difference_update(chunk)
            self._parsing = (chunk, _in_background(lambda: load_workflows(chunk)))
        return self._parsing is not None

    def _apply_parsed(self, now: datetime) -> bool:
        """Schedule a finished parse's triggers; False (chunk queued again) when it failed."""
        chunk, future = self._parsing  # type: ignore[misc]
        self._parsing = None
        try:
            loaded = future.result()
        except Exception:
            log.exception("loading %d changed workflow(s) failed; retrying next tick", len(chunk))
            self._to_parse.update(pk for pk in chunk if self.known.get(pk, (0, False))[1])
            return False
        for item in loaded:
            # Changed again, disabled or deleted while it was parsed: a newer state wins.
            if self.known.get(item.workflow_pk) == (item.version, True):
                self._schedule(item, now)
        log.info(
            "cron triggers: %d workflow(s) parsed, %d trigger(s) scheduled, %d to parse",
            len(loaded),
            len(self.schedule),
            self.pending,
        )
        return True

    def _schedule(self, item: Loaded, now: datetime) -> None:
        self.specs[item.workflow_pk] = item.spec
        for index, trigger in enumerate(item.spec.triggers):
            if trigger.type != "cron":
                continue
            key = (item.tenant_id, item.workflow_pk, index)
            cron = CronSpec(
                key=key,
                expr=trigger.expr,
                tz=trigger.tz,
                misfire_grace_seconds=trigger.misfire_grace_seconds,
                catch_up=trigger.catch_up,
                catch_up_limit=trigger.catch_up_limit,
                version=item.version,
            )
            self.schedule.upsert(cron, last_slot=item.last_slots.get(index), now=now)
            self.keys_of.setdefault(item.workflow_pk, set()).add(key)
