"""Firing due cron slots: one execution per (workflow, trigger, slot), decided by the database.

Several schedulers may fire the same slot; the dedupe key derived from the slot
makes the executions unique index pick one, so correctness never rests on a
lock. Fires are written in batches, one transaction per batch, so a burst of
due slots costs a few commits rather than one per slot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone

from scheduler.due import CronSpec
from shared.db import write_transaction
from shared.dispatch import Dispatcher
from shared.domain.workflow_spec import WorkflowSpec
from shared.engine import outbox
from shared.engine.executions import NewExecution, insert_executions
from shared.engine.outbox import Wakeup
from shared.engine.specs import spec_of
from shared.models import CronState, Workflow, WorkflowVersion, utcnow

log = logging.getLogger(__name__)

#: Fires written in one transaction.
BATCH_SIZE = 250


def dedupe_key(spec: CronSpec, slot: datetime) -> str:
    """The key that makes one slot of one trigger fire once: ``cron:<index>:<slot UTC>``."""
    return f"cron:{spec.key[2]}:{slot.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _context(spec: CronSpec, slot: datetime, fired_at: datetime) -> dict:
    return {
        "body": None,
        "headers": {},
        "query": {},
        "trigger": {
            "type": "cron",
            "expr": spec.expr,
            "tz": spec.tz,
            "scheduled_at": slot.astimezone(timezone.utc).isoformat(),
            "fired_at": fired_at.astimezone(timezone.utc).isoformat(),
        },
    }


def fire(
    dispatcher: Dispatcher,
    fires: list[tuple[CronSpec, datetime]],
    fired_at: datetime,
    specs: Mapping[int, WorkflowSpec] | None = None,
) -> int:
    """Start an execution for each (trigger, slot); returns how many were new (not deduplicated).

    ``specs`` (workflow pk -> parsed spec) spares re-parsing the YAML the scheduler already holds.
    """
    started = 0
    for start in range(0, len(fires), BATCH_SIZE):
        wakeups = _fire_batch(fires[start : start + BATCH_SIZE], fired_at, specs or {})
        started += len(wakeups)
        outbox.send(dispatcher, wakeups)
    return started


def _fire_batch(
    fires: list[tuple[CronSpec, datetime]], fired_at: datetime, specs: Mapping[int, WorkflowSpec]
) -> list[Wakeup]:
    pks = list({spec.key[1] for spec, _ in fires})
    workflows = {
        row.id: row
        for row in Workflow.select().where(Workflow.id.in_(pks), Workflow.enabled == True)  # noqa: E712 - SQL, not Python truth
    }
    versions = {
        row.workflow_id: row
        for row in WorkflowVersion.select()
        .join(
            Workflow,
            on=(
                (WorkflowVersion.workflow == Workflow.id)
                & (WorkflowVersion.version == Workflow.version)
            ),
        )
        .where(Workflow.id.in_(list(workflows)))
    }
    items: list[NewExecution] = []
    newest: dict[tuple[int, int], datetime] = {}
    for spec, slot in fires:
        _, workflow_pk, index = spec.key
        if workflow_pk not in workflows or workflow_pk not in versions:
            continue  # disabled or deleted since it was armed
        version = versions[workflow_pk]
        parsed = specs.get(workflow_pk)
        if parsed is None or spec.version != version.version:
            parsed = spec_of(version)
        items.append(
            NewExecution(
                workflows[workflow_pk],
                version,
                parsed,
                "cron",
                spec.expr,
                _context(spec, slot, fired_at),
                dedupe_key(spec, slot),
            )
        )
        key = (workflow_pk, index)
        newest[key] = max(newest.get(key, slot), slot)
    with write_transaction():
        started = insert_executions(items, actor="scheduler")
        for (workflow_pk, index), slot in newest.items():
            _remember(workflows[workflow_pk], index, slot)
    return [wakeup for item in started for wakeup in item.wakeups]


def _remember(workflow: Workflow, index: int, slot: datetime) -> None:
    """Record the newest fired slot (only ever forward, whichever scheduler gets there first)."""
    moment = _naive_utc(slot)
    updated = (
        CronState.update(last_slot=moment, updated_at=utcnow())
        .where(
            CronState.workflow == workflow.id,
            CronState.trigger_index == index,
            CronState.last_slot < moment,
        )
        .execute()
    )
    if not updated:
        CronState.insert(
            tenant=workflow.tenant_id, workflow=workflow.id, trigger_index=index, last_slot=moment
        ).on_conflict_ignore().execute()
