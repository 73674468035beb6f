"""Which runner a `runner` step's job goes to: an eligible online runner of the tenant, least busy."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import datetime

from peewee import JOIN, fn

from shared.models import RUNNER_JOB_ENDED, Runner, RunnerDenial, RunnerJob
from shared.runners.presence import online_condition


def describe(selector: Mapping[str, object]) -> str:
    """A selector as a message shows it: ``runner rn_x`` or ``labels role=db``."""
    if selector.get("id"):
        return f"runner {selector['id']}"
    labels = selector.get("labels") or {}
    return "labels " + ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def labels_match(runner_labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """True when the runner carries every wanted label with the same value."""
    return all(runner_labels.get(key) == value for key, value in wanted.items())


def eligible(tenant_id: str, selector: Mapping[str, object], now: datetime) -> list[Runner]:
    """The tenant's online runners that ``selector`` names or whose labels all match, not denied.

    A runner id of another tenant is simply not eligible (tenancy answers "none",
    never "not yours").
    """
    query = (
        Runner.for_tenant(tenant_id)
        .join(RunnerDenial, JOIN.LEFT_OUTER, on=(RunnerDenial.runner == Runner.id))
        .where(online_condition(now), RunnerDenial.runner.is_null())
    )
    if selector.get("id"):
        query = query.where(Runner.id == selector["id"])
    wanted = selector.get("labels") or {}
    return [runner for runner in query if labels_match(json.loads(runner.labels_json), wanted)]


def pick(tenant_id: str, selector: Mapping[str, object], now: datetime) -> Runner | None:
    """The eligible runner with the fewest unfinished jobs (random among equals); None if none."""
    runners = eligible(tenant_id, selector, now)
    if not runners:
        return None
    busy = dict(
        RunnerJob.select(RunnerJob.runner, fn.COUNT(RunnerJob.id))
        .where(
            RunnerJob.runner.in_([runner.id for runner in runners]),
            RunnerJob.status.not_in(RUNNER_JOB_ENDED),
        )
        .group_by(RunnerJob.runner)
        .tuples()
    )
    fewest = min(busy.get(runner.id, 0) for runner in runners)
    return random.choice([runner for runner in runners if busy.get(runner.id, 0) == fewest])
