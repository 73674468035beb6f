"""Which runner a step's job goes to: the tenant's online, allowed runners matching the selector, least busy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.models import RunnerDenial, RunnerJob, Tenant, utcnow
from shared.runners import selection
from tests.support.runner_rows import make_runner


@pytest.fixture
def tenants(db):
    return (
        Tenant.create(name="Acme", slug="acme", mode="saas"),
        Tenant.create(name="Globex", slug="globex", mode="saas"),
    )


def test_labels_must_all_match(tenants):
    acme, _ = tenants
    db_host, _ = make_runner(acme.id, labels={"role": "db", "zone": "a"})
    make_runner(acme.id, labels={"role": "web", "zone": "a"}, name="web")

    picked = selection.pick(acme.id, {"labels": {"role": "db", "zone": "a"}}, utcnow())
    none = selection.pick(acme.id, {"labels": {"role": "db", "zone": "b"}}, utcnow())

    assert picked.id == db_host.id and none is None


def test_another_tenants_runner_is_never_eligible_even_by_id(tenants):
    acme, globex = tenants
    theirs, _ = make_runner(globex.id)

    assert selection.pick(acme.id, {"id": theirs.id}, utcnow()) is None
    assert selection.pick(globex.id, {"id": theirs.id}, utcnow()).id == theirs.id


def test_offline_stale_retired_and_denied_runners_are_not_eligible(tenants):
    acme, _ = tenants
    now = utcnow()
    make_runner(acme.id, online=False, name="offline")
    stale, _ = make_runner(acme.id, name="stale")
    stale.last_seen_at = now - timedelta(minutes=5)
    stale.save()
    retired, _ = make_runner(acme.id, name="retired")
    retired.retired_at = now
    retired.save()
    denied, _ = make_runner(acme.id, name="denied")
    RunnerDenial.create(tenant=acme.id, runner=denied.id, created_by="admin")

    assert selection.eligible(acme.id, {"labels": {}}, now) == []


def test_the_least_busy_runner_is_picked(tenants):
    acme, _ = tenants
    busy, _ = make_runner(acme.id, name="busy")
    idle, _ = make_runner(acme.id, name="idle")
    now = utcnow()
    RunnerJob.create(
        tenant=acme.id,
        runner=busy.id,
        status="accepted",
        payload="{}",
        signature="00",
        nonce="n",
        not_after=now,
        deadline_at=now,
        timeout_seconds=1,
    )

    assert {selection.pick(acme.id, {"labels": {}}, now).id for _ in range(10)} == {idle.id}


@pytest.mark.parametrize(
    ("selector", "shown"),
    [({"id": "rn_1"}, "runner rn_1"), ({"labels": {"b": "2", "a": "1"}}, "labels a=1,b=2")],
)
def test_describe(selector, shown):
    assert selection.describe(selector) == shown
