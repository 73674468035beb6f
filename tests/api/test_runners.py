"""The runner routes: roles, tenancy (another tenant's runner, job or certificate is 404) and bad input."""

from __future__ import annotations

import json

import pytest

from shared.db import connection
from shared.models import AuditLog, RunnerEnrollmentToken, Tenant
from shared.runner_keys import load_ca
from shared.runners import jobs, masking
from tests.api.test_query_counts import queries_for
from tests.support.runner_rows import Stack, make_runner

FINGERPRINT = "c" * 64


@pytest.fixture
def runners(world, saas_settings):
    """acme has a runner (with a certificate) that ran a job; globex has a runner."""
    masking.use_settings(saas_settings)
    with connection():
        acme = Tenant.get_by_id(world.tenants["acme"])
        runner, key = make_runner(acme.id, labels={"role": "db"}, fingerprint=FINGERPRINT)
        theirs, _ = make_runner(world.tenants["globex"], name="globex-host")
        stack = Stack(saas_settings, acme, runner, key)
        _, job = stack.start()
        for seq, stream, data in ((1, "stdout", b"one\n"), (2, "stderr", b"two\n")):
            jobs.record_log_chunk(runner.id, job.id, seq, stream, data)
        jobs.record_log_chunk(runner.id, job.id, 3, "stdout", b"three\n")
        stack.result(job, status="failed", exit_code=3, duration_ms=7)
    return {"runner": runner, "theirs": theirs, "job": job}


def assert_error(response, status: int) -> None:
    assert response.status_code == status, response.json
    assert response.json["code"] == status and response.json["message"]


def test_list_shows_the_tenants_runners_only(world, runners):
    acme = world.call("acme-viewer", "GET", "/api/runners")
    globex = world.call("globex-admin", "GET", "/api/runners")

    assert acme.status_code == 200
    [item] = acme.json["items"]
    assert item["id"] == runners["runner"].id and item["status"] == "online"
    assert item["labels"] == {"role": "db"} and item["denied"] is False
    assert set(item) >= {"name", "last_seen_at", "inventory", "cert_not_after", "enrolled_at"}
    assert [item["id"] for item in globex.json["items"]] == [runners["theirs"].id]


def test_one_runner_with_its_certificates_and_404_across_tenants(world, runners):
    runner_id = runners["runner"].id

    mine = world.call("acme-viewer", "GET", f"/api/runners/{runner_id}")
    theirs = world.call("globex-admin", "GET", f"/api/runners/{runner_id}")

    assert mine.status_code == 200 and mine.json["denial"] is None
    assert [cert["fingerprint"] for cert in mine.json["certificates"]] == [FINGERPRINT]
    assert_error(theirs, 404)
    assert_error(world.call("acme-viewer", "GET", "/api/runners/rn_missing"), 404)


def test_retiring_needs_an_admin_and_hides_the_runner(world, runners):
    runner_id = runners["runner"].id

    forbidden = world.call("acme-operator", "DELETE", f"/api/runners/{runner_id}")
    other_tenant = world.call("globex-admin", "DELETE", f"/api/runners/{runner_id}")
    retired = world.call("acme-admin", "DELETE", f"/api/runners/{runner_id}")
    listed = world.call("acme-admin", "GET", "/api/runners").json["items"]
    with_retired = world.call("acme-admin", "GET", "/api/runners?include_retired=true").json

    assert_error(forbidden, 403)
    assert_error(other_tenant, 404)
    assert retired.status_code == 204 and listed == []
    assert with_retired["items"][0]["retired_at"] is not None
    assert_error(world.call("acme-admin", "GET", "/api/runners?include_retired=maybe"), 422)


def test_an_enrollment_token_answer(world, saas_settings):
    response = world.call(
        "acme-admin",
        "POST",
        "/api/runners/enrollment-tokens",
        json={"labels": {"role": "db"}, "ttl_seconds": 120},
    )

    body = response.json
    assert response.status_code == 201
    assert body["ca_sha256"] == load_ca(saas_settings).sha256
    assert body["gateway"] == f"127.0.0.1:{saas_settings.gateway_enroll_port}"
    assert f"--token {body['token']}" in body["command"] and "--label role=db" in body["command"]
    with connection():
        row = RunnerEnrollmentToken.get()
        audit_text = json.dumps([row.__data__ for row in AuditLog.select()], default=str)
    assert body["token"] not in audit_text and row.created_by == "admin@acme.test"
    listed = world.call("acme-admin", "GET", "/api/runners/enrollment-tokens").json["items"]
    assert [item["id"] for item in listed] == [row.id] and "token" not in listed[0]
    assert world.call("globex-admin", "GET", "/api/runners/enrollment-tokens").json == {"items": []}


@pytest.mark.parametrize(
    "body",
    [
        {"labels": {"bad key": "x"}},
        {"ttl_seconds": 601},
        {"ttl_seconds": 0},
        {"labels": {"a": 1}},
        {"unknown": True},
    ],
)
def test_bad_token_requests_are_422(world, body):
    response = world.call("acme-admin", "POST", "/api/runners/enrollment-tokens", json=body)

    assert_error(response, 422)


def test_only_admins_make_tokens(world):
    response = world.call("acme-operator", "POST", "/api/runners/enrollment-tokens", json={})

    assert_error(response, 403)


def test_a_job_result_and_its_log_pages(world, runners):
    job_id = runners["job"].id

    result = world.call("acme-viewer", "GET", f"/api/runner/job-results/{job_id}")
    first = world.call("acme-viewer", "GET", f"/api/runner/job-results/{job_id}/log?limit=2")
    rest = world.call(
        "acme-viewer",
        "GET",
        f"/api/runner/job-results/{job_id}/log?after_seq={first.json['next_after_seq']}",
    )

    assert result.status_code == 200
    assert result.json["status"] == "failed" and result.json["exit_code"] == 3
    assert result.json["stdout"] == "one\nthree\n" and result.json["stderr"] == "two\n"
    assert result.json["step_id"] == "run" and result.json["duration_ms"] == 7
    assert "payload" not in result.json and "signature" not in result.json
    assert [(c["seq"], c["stream"]) for c in first.json["items"]] == [(1, "stdout"), (2, "stderr")]
    assert first.json["next_after_seq"] == 2
    assert [c["data"] for c in rest.json["items"]] == ["three\n"]
    assert rest.json["next_after_seq"] is None


def test_another_tenants_job_is_404_and_bad_paging_is_422(world, runners):
    job_id = runners["job"].id

    assert_error(world.call("globex-admin", "GET", f"/api/runner/job-results/{job_id}"), 404)
    assert_error(world.call("globex-admin", "GET", f"/api/runner/job-results/{job_id}/log"), 404)
    assert_error(
        world.call("acme-viewer", "GET", f"/api/runner/job-results/{job_id}/log?after_seq=-1"),
        422,
    )
    assert_error(
        world.call("acme-viewer", "GET", f"/api/runner/job-results/{job_id}/log?limit=5000"), 422
    )


def test_the_denylist(world, runners):
    runner_id = runners["runner"].id
    path = f"/api/ops/runner-denylist/{runner_id}"

    denied = world.call("acme-admin", "PUT", path, json={"reason": "stolen"})
    listed = world.call("acme-admin", "GET", "/api/ops/runner-denylist")
    shown = world.call("acme-viewer", "GET", f"/api/runners/{runner_id}").json
    allowed = world.call("acme-admin", "DELETE", path)
    after = world.call("acme-admin", "GET", "/api/ops/runner-denylist")

    assert denied.status_code == 200 and denied.json["reason"] == "stolen"
    assert denied.json["created_by"] == "admin@acme.test"
    assert [item["runner_id"] for item in listed.json["items"]] == [runner_id]
    assert shown["denied"] is True and shown["denial"]["reason"] == "stolen"
    assert allowed.status_code == 204 and after.json == {"items": []}


def test_denylist_roles_tenancy_and_bad_input(world, runners):
    path = f"/api/ops/runner-denylist/{runners['runner'].id}"

    assert_error(world.call("acme-operator", "PUT", path, json={"reason": "x"}), 403)
    assert_error(world.call("acme-viewer", "GET", "/api/ops/runner-denylist"), 403)
    assert_error(world.call("globex-admin", "PUT", path, json={"reason": "x"}), 404)
    assert_error(world.call("globex-admin", "DELETE", path), 404)
    assert_error(world.call("acme-admin", "PUT", path, json={"why": "x"}), 422)
    assert_error(world.call("acme-admin", "PUT", path, json={"reason": "x" * 1001}), 422)


def test_revocations(world, runners):
    path = f"/api/ops/runner-revocations/{FINGERPRINT}"

    revoked = world.call("acme-admin", "PUT", path, json={"reason": "key leaked"})
    listed = world.call("acme-admin", "GET", "/api/ops/runner-revocations")
    lifted = world.call("acme-admin", "DELETE", path)
    after = world.call("acme-admin", "GET", "/api/ops/runner-revocations")

    assert revoked.status_code == 200
    assert revoked.json["runner_id"] == runners["runner"].id
    assert revoked.json["revoked_by"] == "admin@acme.test"
    assert [item["fingerprint"] for item in listed.json["items"]] == [FINGERPRINT]
    assert lifted.status_code == 204 and after.json == {"items": []}


def test_revocation_tenancy_and_bad_input(world, runners):
    path = f"/api/ops/runner-revocations/{FINGERPRINT}"

    assert_error(world.call("globex-admin", "PUT", path, json={"reason": "x"}), 404)
    assert_error(world.call("acme-operator", "PUT", path, json={"reason": "x"}), 403)
    assert_error(
        world.call("acme-admin", "PUT", "/api/ops/runner-revocations/" + "d" * 64, json={}), 404
    )
    assert_error(
        world.call("acme-admin", "PUT", "/api/ops/runner-revocations/not-hex", json={}), 422
    )
    assert_error(world.call("acme-admin", "DELETE", "/api/ops/runner-revocations/zz"), 422)


@pytest.mark.parametrize(
    "path", ["/api/runners", "/api/ops/runner-denylist", "/api/runners/enrollment-tokens"]
)
def test_runner_lists_cost_the_same_queries_however_many_rows(world, runners, path):
    few = queries_for(world, path)
    with connection():
        for number in range(5):
            runner, _ = make_runner(world.tenants["acme"], name=f"host-{number}")
            world.call("acme-admin", "PUT", f"/api/ops/runner-denylist/{runner.id}", json={})
            world.call("acme-admin", "POST", "/api/runners/enrollment-tokens", json={})

    assert queries_for(world, path) == few
