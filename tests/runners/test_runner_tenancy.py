"""Tenant B cannot list, read, change or target tenant A's runners: 404, and "no eligible runner".

Must show (issue 11): tenant B cannot list, read or target tenant A's runners (404).
"""

from __future__ import annotations

from tests.support.runner_stack import RunnerStack, runner_workflow


def test_another_tenant_cannot_list_read_or_target_the_runner(runner_stack):
    stack: RunnerStack = runner_stack(tenants=("acme", "globex"))
    acme, globex = stack.tenant_tokens["acme"], stack.tenant_tokens["globex"]
    runner = stack.enroll("acme-1", token=acme)
    stack.enroll("globex-1", token=globex)

    stack.put_workflow(
        "mine", runner_workflow("mine", {"id": runner.runner_id}, ["true"]), token=acme
    )
    mine = stack.wait_execution(stack.hook("mine", tenant="acme"), token=acme)
    assert mine["status"] == "succeeded", mine
    job_id = mine["steps"][0]["output"]["job_id"]

    assert runner.view(token=acme)["status"] == "online"
    listed = [item["id"] for item in stack.get("/api/runners", token=globex).json()["items"]]
    assert runner.runner_id not in listed and len(listed) == 1
    for method, path in (
        ("GET", f"/api/runners/{runner.runner_id}"),
        ("DELETE", f"/api/runners/{runner.runner_id}"),
        ("GET", f"/api/runner/job-results/{job_id}"),
        ("GET", f"/api/runner/job-results/{job_id}/log"),
        ("PUT", f"/api/ops/runner-denylist/{runner.runner_id}"),
        ("DELETE", f"/api/ops/runner-denylist/{runner.runner_id}"),
    ):
        kwargs = {"json": {"reason": "x"}} if method == "PUT" else {}
        response = stack.request(method, path, token=globex, **kwargs)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
    fingerprint = runner.row().cert_fingerprint
    response = stack.request(
        "PUT", f"/api/ops/runner-revocations/{fingerprint}", token=globex, json={"reason": "x"}
    )
    assert response.status_code == 404, response.text

    stack.put_workflow(
        "theirs", runner_workflow("theirs", {"id": runner.runner_id}, ["true"]), token=globex
    )
    theirs = stack.wait_execution(stack.hook("theirs", tenant="globex"), token=globex)
    assert theirs["status"] == "failed"
    assert "no eligible runner" in theirs["steps"][0]["error"], theirs["steps"][0]
    assert len(stack.jobs_of(runner.runner_id)) == 1
    # Nothing globex did touched acme's runner.
    assert runner.view(token=acme)["status"] == "online"
