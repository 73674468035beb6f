"""The template context of a step: the trigger, vars, secrets and earlier steps' results."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from shared.domain.workflow_spec import WorkflowSpec
from shared.models import Execution, StepRun


def step_view(step_run: StepRun) -> dict[str, Any]:
    """What ``steps.<id>`` shows of a step run."""
    stored = json.loads(step_run.output_redacted or "{}")
    return {
        "status": step_run.status,
        "status_code": stored.get("status_code"),
        "headers": stored.get("headers"),
        "body": stored.get("body"),
        "output": stored.get("output"),
        "error": step_run.error,
    }


def trigger_context(execution: Execution) -> dict[str, Any]:
    """The stored request/trigger part of the context (body, headers, query, trigger)."""
    return json.loads(execution.trigger_context or "{}")


def build_context(
    execution: Execution,
    spec: WorkflowSpec,
    step_runs: Iterable[StepRun],
    secrets: Mapping[str, str],
) -> dict[str, Any]:
    """Everything a template of ``execution`` may refer to."""
    stored = trigger_context(execution)
    return {
        "body": stored.get("body"),
        "headers": stored.get("headers", {}),
        "query": stored.get("query", {}),
        "trigger": stored.get("trigger", {}),
        "vars": dict(spec.vars),
        "secrets": dict(secrets),
        "execution": {
            "id": execution.id,
            "workflow_id": spec.id,
            "trigger_type": execution.trigger_type,
            "started_at": execution.started_at.isoformat() if execution.started_at else None,
        },
        "steps": {run.step_id: step_view(run) for run in step_runs},
    }
