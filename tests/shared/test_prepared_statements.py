"""Cached-SQL reads and writes give exactly what peewee's own queries give, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.db import PreparedSelect, insert_row, update_row
from shared.models import Execution, StepRun, Tenant, Workflow, WorkflowVersion, utcnow


@pytest.fixture
def execution(db):
    tenant = Tenant.create(name="Acme", slug="acme", mode="saas")
    workflow = Workflow.create(tenant=tenant, workflow_key="wf", name="wf", yaml="id: wf")
    version = WorkflowVersion.create(tenant=tenant, workflow=workflow, version=1, yaml="id: wf")
    return Execution.create(
        tenant=tenant,
        workflow=workflow,
        workflow_version=version,
        status="queued",
        trigger_type="webhook",
    )


RUN_WITH_EXECUTION = PreparedSelect(
    lambda run_id: (
        StepRun.select(StepRun, Execution)
        .join(Execution, on=(StepRun.execution == Execution.id))
        .where(StepRun.id == run_id)
    )
)


def a_run(execution, **values):
    return {
        "tenant": execution.tenant_id,
        "execution": execution.id,
        "step_id": "one",
        "step_index": 0,
        "status": "running",
        **values,
    }


def test_an_inserted_row_reads_back_as_peewee_would_store_it(execution):
    started = utcnow().replace(microsecond=123456)
    insert_row(StepRun, a_run(execution, id="sr_1", started_at=started, error=None, attempt=2))

    run = StepRun.get_by_id("sr_1")

    assert (run.status, run.attempt, run.started_at, run.error) == ("running", 2, started, None)
    assert run.max_attempts == 1 and run.output_redacted == "{}"  # defaults filled in


def test_defaults_are_evaluated_for_each_row_not_once(execution):
    insert_row(StepRun, a_run(execution, step_id="one"))
    insert_row(StepRun, a_run(execution, step_id="two", step_index=1))

    ids = [run.id for run in StepRun.select()]

    assert len(set(ids)) == 2


def test_an_update_changes_only_its_row_and_counts_it(execution):
    insert_row(StepRun, a_run(execution, id="sr_a"))
    insert_row(StepRun, a_run(execution, id="sr_b", step_id="two", step_index=1))
    ended = utcnow()

    changed = update_row(StepRun, "sr_a", {"status": "succeeded", "ended_at": ended})
    missing = update_row(StepRun, "sr_nope", {"status": "succeeded", "ended_at": ended})

    assert (changed, missing) == (1, 0)
    assert StepRun.get_by_id("sr_a").ended_at == ended
    assert StepRun.get_by_id("sr_b").status == "running"


def test_a_prepared_join_binds_new_values_each_time_and_fills_the_joined_row(execution):
    insert_row(StepRun, a_run(execution, id="sr_1"))
    insert_row(StepRun, a_run(execution, id="sr_2", step_id="two", step_index=1))
    later = utcnow() + timedelta(seconds=5)
    Execution.update(started_at=later).execute()

    first = RUN_WITH_EXECUTION.first("sr_1")
    second = RUN_WITH_EXECUTION.first("sr_2")

    assert (first.id, second.id) == ("sr_1", "sr_2")
    assert second.execution.id == execution.id and second.execution.started_at == later
    assert RUN_WITH_EXECUTION.first("sr_none") is None


def test_a_write_that_would_freeze_a_value_into_the_cache_is_refused(execution):
    # Workflow.created_at has a default peewee would add on its own: insert_row fills
    # it per row, so the generated SQL holds only this call's placeholders.
    insert_row(
        Workflow, {"tenant": execution.tenant_id, "workflow_key": "w2", "name": "w2", "yaml": ""}
    )
    with pytest.raises(ValueError, match="give every column"):
        update_row(Workflow, "x", {"name": Workflow.name.concat("!")})
