"""Parsed workflow versions, cached by version id: a version's YAML never changes once stored."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from shared.db import database_token
from shared.domain.workflow_spec import WorkflowSpec, parse_workflow
from shared.models import Execution, WorkflowVersion

#: Parsed versions kept per process (a parsed spec is a few kilobytes).
CACHE_SIZE = 16_384

# Keyed by (bound database, version id): ids are unique within one database only.
_cache: OrderedDict[tuple[int, int], WorkflowSpec] = OrderedDict()
_lock = threading.Lock()


def _cached(version_id: int, load_yaml: Callable[[], str]) -> WorkflowSpec:
    key = (database_token(), version_id)
    with _lock:
        spec = _cache.get(key)
        if spec is not None:
            _cache.move_to_end(key)
            return spec
    # Stored versions were checked, step limit included, when they were uploaded; a limit
    # lowered since must not stop them from running.
    spec = parse_workflow(load_yaml(), max_steps=None)
    with _lock:
        _cache[key] = spec
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return spec


def spec_of(version: WorkflowVersion) -> WorkflowSpec:
    """The typed spec of a stored workflow version (row already loaded)."""
    return _cached(version.id, lambda: version.yaml)


def spec_of_execution(execution: Execution) -> WorkflowSpec:
    """The spec an execution pinned; the version row is read only on a cache miss."""
    version_id = execution.workflow_version_id
    return _cached(version_id, lambda: WorkflowVersion.get_by_id(version_id).yaml)
