"""Which cron triggers exist: loads enabled workflows' cron triggers and notices changes cheaply.

Each tick asks the database one aggregate question (how many workflows, newest
change); only when the answer moves does it read the (id, version, enabled) of
every workflow and re-parse just the ones whose version or state changed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from peewee import fn

from scheduler.due import CronSpec, Schedule
from shared.domain.workflow_spec import WorkflowSpec
from shared.engine.specs import spec_of
from shared.models import CronState, Workflow, WorkflowVersion

log = logging.getLogger(__name__)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class CronSource:
    """Keeps a Schedule in step with the workflows table."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.known: dict[int, tuple[int, bool]] = {}  # workflow pk -> (version, enabled)
        self.keys_of: dict[int, set[tuple[str, int, int]]] = {}
        self.specs: dict[int, WorkflowSpec] = {}  # workflow pk -> parsed current version
        self.fingerprint: tuple | None = None

    def refresh(self, now: datetime) -> int:
        """Bring the schedule up to date; returns how many workflows were (re)loaded or dropped."""
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
            for key in self.keys_of.pop(pk, set()):
                self.schedule.remove(key)
        self._load([pk for pk in changed if current[pk][1]], now)
        self.known = current
        self.fingerprint = fingerprint
        if changed or gone:
            log.info(
                "cron triggers refreshed: %d workflow(s) changed, %d removed, %d trigger(s) scheduled",
                len(changed),
                len(gone),
                len(self.schedule),
            )
        return len(changed) + len(gone)

    def _load(self, workflow_pks: list[int], now: datetime) -> None:
        if not workflow_pks:
            return
        for start in range(0, len(workflow_pks), 500):
            chunk = workflow_pks[start : start + 500]
            rows = (
                WorkflowVersion.select(WorkflowVersion, Workflow.id, Workflow.tenant)
                .join(
                    Workflow,
                    on=(
                        (WorkflowVersion.workflow == Workflow.id)
                        & (WorkflowVersion.version == Workflow.version)
                    ),
                )
                .where(Workflow.id.in_(chunk))
            )
            states = {
                (state.workflow_id, state.trigger_index): _aware(state.last_slot)
                for state in CronState.select().where(CronState.workflow.in_(chunk))
            }
            for version in rows:
                spec = spec_of(version)
                self.specs[version.workflow_id] = spec
                for index, trigger in enumerate(spec.triggers):
                    if trigger.type != "cron":
                        continue
                    key = (version.workflow.tenant_id, version.workflow_id, index)
                    cron = CronSpec(
                        key=key,
                        expr=trigger.expr,
                        tz=trigger.tz,
                        misfire_grace_seconds=trigger.misfire_grace_seconds,
                        catch_up=trigger.catch_up,
                        catch_up_limit=trigger.catch_up_limit,
                        version=version.version,
                    )
                    last = states.get((version.workflow_id, index))
                    self.schedule.upsert(cron, last_slot=last, now=now)
                    self.keys_of.setdefault(version.workflow_id, set()).add(key)
