"""Denylist, revocation and retirement on every backend: version bumps, tenancy, jobs ended."""

from __future__ import annotations

import json

import pytest
import redis

from shared.dispatch import Dispatcher
from shared.errors import NotFound
from shared.models import (
    AuditLog,
    Runner,
    RunnerCertificate,
    RunnerDenial,
    RunnerJob,
    StepRun,
    Tenant,
)
from shared.runners import denylist, masking, signals
from tests.support.runner_rows import Stack, make_runner

FP_A = "a" * 64
FP_B = "b" * 64


@pytest.fixture
def world(db, make_settings):
    settings = make_settings()
    masking.use_settings(settings)
    acme = Tenant.create(name="Acme", slug="acme", mode="saas")
    globex = Tenant.create(name="Globex", slug="globex", mode="saas")
    runner, key = make_runner(acme.id, labels={"role": "db"}, fingerprint=FP_A)
    other, _ = make_runner(globex.id, name="globex-host", fingerprint=FP_B)
    return {
        "settings": settings,
        "dispatcher": Dispatcher(settings),
        "acme": acme,
        "globex": globex,
        "runner": runner,
        "key": key,
        "other": other,
    }


def kwargs(world):
    return {"settings": world["settings"], "dispatcher": world["dispatcher"]}


def _denied_ids() -> set[str]:
    return {row.runner_id for row in RunnerDenial.select()}


def test_deny_and_allow_bump_the_version_and_show_in_the_denylist(world):
    runner = world["runner"]
    before = denylist.control_version()

    denylist.deny(world["acme"].id, runner.id, "stolen host", "admin", **kwargs(world))
    denied_version, denied = denylist.control_version(), _denied_ids()
    allowed_now = denylist.allow(world["acme"].id, runner.id, "admin", **kwargs(world))
    allowed_again = denylist.allow(world["acme"].id, runner.id, "admin", **kwargs(world))
    after_version, after = denylist.control_version(), _denied_ids()

    assert before == 0 and denied_version == 1 and after_version == 2
    assert denied == {runner.id} and after == set()
    assert (allowed_now, allowed_again) == (True, False)
    actions = [row.action for row in AuditLog.select().order_by(AuditLog.id)]
    assert actions == ["runner.denied", "runner.allowed"]


def test_a_change_is_published_on_the_control_channel(world):
    settings = world["settings"]
    subscriber = redis.Redis.from_url(settings.resolved_redis_url).pubsub()
    subscriber.subscribe(signals.control_channel(settings))
    subscriber.get_message(timeout=2)  # the subscription confirmation

    denylist.deny(world["acme"].id, world["runner"].id, "x", "admin", **kwargs(world))

    message = subscriber.get_message(timeout=5)
    assert json.loads(message["data"]) == {"version": 1, "runner_ids": [world["runner"].id]}


def test_another_tenants_runner_or_certificate_is_not_found(world):
    with pytest.raises(NotFound):
        denylist.deny(world["acme"].id, world["other"].id, "x", "admin", **kwargs(world))
    with pytest.raises(NotFound):
        denylist.revoke_certificate(world["acme"].id, FP_B, "x", "admin", **kwargs(world))
    with pytest.raises(NotFound):
        denylist.retire(world["acme"].id, world["other"].id, "admin", **kwargs(world))
    assert denylist.control_version() == 0


def test_revoking_a_certificate_and_lifting_it(world):
    revoked = denylist.revoke_certificate(
        world["acme"].id, FP_A.upper(), "leaked key", "admin", **kwargs(world)
    )
    revoked_now = {
        row.fingerprint
        for row in RunnerCertificate.select().where(RunnerCertificate.revoked_at.is_null(False))
    }
    lifted = denylist.unrevoke_certificate(world["acme"].id, FP_A, "admin", **kwargs(world))

    assert revoked.revoked_by == "admin" and revoked.revoke_reason == "leaked key"
    assert revoked_now == {FP_A}
    assert lifted and RunnerCertificate.get_by_id(FP_A).revoked_at is None
    assert [row.fingerprint for row in denylist.revocations(world["acme"].id)] == []


def test_a_denial_fails_the_runners_running_job_naming_it_without_retry(world):
    stack = Stack(world["settings"], world["acme"], world["runner"], world["key"])
    run_id, job = stack.start("retry: {max: 3}")

    denylist.deny(world["acme"].id, world["runner"].id, "compromised", "ops@acme", **kwargs(world))

    run = StepRun.get_by_id(run_id)
    assert RunnerJob.get_by_id(job.id).status == "denied"
    assert run.status == "failed"
    assert f"runner {world['runner'].id} was put on the denylist by ops@acme: compromised" in (
        run.error
    )


def test_revoking_the_current_certificate_fails_the_job_naming_it(world):
    stack = Stack(world["settings"], world["acme"], world["runner"], world["key"])
    run_id, job = stack.start()

    denylist.revoke_certificate(world["acme"].id, FP_A, "leaked", "ops@acme", **kwargs(world))

    run = StepRun.get_by_id(run_id)
    assert RunnerJob.get_by_id(job.id).status == "denied"
    assert f"certificate {FP_A[:16]} of runner {world['runner'].id} was revoked" in run.error


def test_retiring_a_runner_ends_its_jobs_and_hides_it_from_selection(world):
    stack = Stack(world["settings"], world["acme"], world["runner"], world["key"])
    run_id, job = stack.start()

    denylist.retire(world["acme"].id, world["runner"].id, "ops@acme", **kwargs(world))

    retired = {row.id for row in Runner.select().where(Runner.retired_at.is_null(False))}
    assert retired == {world["runner"].id} and denylist.control_version() == 1
    assert RunnerJob.get_by_id(job.id).status == "cancelled"
    assert "was retired by ops@acme" in StepRun.get_by_id(run_id).error
