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

from peewee import EXCLUDED, fn

from scheduler.due import CronSpec
from shared.db import backend_name, database, in_write_transaction
from shared.dispatch import Dispatcher
from shared.domain.workflow_spec import WorkflowSpec
from shared.engine import outbox
from shared.engine.executions import NewExecution, Started, insert_executions
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
    started = _insert_batch(items, newest, workflows)
    return [wakeup for item in started for wakeup in item.wakeups]


@in_write_transaction
def _insert_batch(
    items: list[NewExecution],
    newest: dict[tuple[int, int], datetime],
    workflows: Mapping[int, Workflow],
) -> list[Started]:
    """Insert a batch's executions and remember its slots, in one transaction (run again on a deadlock)."""
    started = insert_executions(items, actor="scheduler")
    _remember(newest, workflows)
    return started


def _remember(newest: dict[tuple[int, int], datetime], workflows: Mapping[int, Workflow]) -> None:
    """Record each trigger's newest fired slot in one upsert; a slot only ever moves forward."""
    if not newest:
        return
    now = utcnow()
    rows = [
        {
            "tenant": workflows[pk].tenant_id,
            "workflow": pk,
            "trigger_index": index,
            "last_slot": _naive_utc(slot),
            "updated_at": now,
        }
        for (pk, index), slot in newest.items()
    ]
    insert = CronState.insert_many(rows)
    if backend_name() == "mysql":
        db = database.obj
        value = (
            fn.VALUE if (db.server_version or (0,)) >= (10, 3, 3) else fn.VALUES
        )  # MariaDB renamed it
        insert = insert.on_conflict(
            update={
                CronState.last_slot: fn.GREATEST(CronState.last_slot, value(CronState.last_slot)),
                CronState.updated_at: now,
            }
        )
    else:
        insert = insert.on_conflict(
            conflict_target=[CronState.workflow, CronState.trigger_index],
            update={
                CronState.last_slot: EXCLUDED.last_slot,
                CronState.updated_at: EXCLUDED.updated_at,
            },
            where=(CronState.last_slot < EXCLUDED.last_slot),
        )
    insert.execute()
