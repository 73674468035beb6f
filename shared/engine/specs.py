"""Parsed workflow versions, cached: a version's YAML never changes once stored."""

from __future__ import annotations

import functools

from shared.domain.workflow_spec import WorkflowSpec, parse_workflow
from shared.models import WorkflowVersion


@functools.lru_cache(maxsize=512)
def _parse(version_id: int, text: str) -> WorkflowSpec:
    return parse_workflow(text)


def spec_of(version: WorkflowVersion) -> WorkflowSpec:
    """The typed spec of a stored workflow version."""
    return _parse(version.id, version.yaml)
