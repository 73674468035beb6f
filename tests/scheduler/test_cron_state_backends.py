"""The newest-slot upsert of fired cron triggers on every backend: one statement, never backwards."""

from __future__ import annotations

from datetime import datetime, timezone

from scheduler.firing import _remember
from shared.models import CronState, Tenant, Workflow


def test_newest_slots_are_upserted_and_never_move_back(db):
    tenant = Tenant.create(name="Acme", slug="acme", mode="saas")
    workflow = Workflow.create(tenant=tenant, workflow_key="wf", name="wf", yaml="x")
    workflows = {workflow.id: workflow}

    def at(minute):
        return datetime(2026, 1, 1, 0, minute, tzinfo=timezone.utc)

    _remember({(workflow.id, 0): at(5), (workflow.id, 1): at(7)}, workflows)
    _remember({(workflow.id, 0): at(9), (workflow.id, 1): at(3)}, workflows)

    slots = {row.trigger_index: row.last_slot for row in CronState.select()}
    assert slots == {0: datetime(2026, 1, 1, 0, 9), 1: datetime(2026, 1, 1, 0, 7)}
