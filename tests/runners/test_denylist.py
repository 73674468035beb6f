"""Denylist and certificate revocation: a streaming job's stream is cut, its step fails, reconnects wait.

Must show (issue 11): denylist PUT during a streaming job -> stream cut <= 5 s, the
step fails naming the denial, reconnects refused; DELETE -> it reconnects. The
same for a revoked fingerprint.
"""

from __future__ import annotations

import time
from datetime import datetime

from shared.models import utcnow
from tests.support.runner_stack import Agent, RunnerStack, runner_workflow, wait_until

#: The issue's bound from the PUT to the cut stream, in seconds.
CUT_WITHIN_S = 5
#: How long the test watches a refused runner stay offline, in seconds.
STAYS_OUT_S = 8
#: A job that streams a line every 0.1 s for a minute.
STREAM = "i=1; while [ $i -le 600 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done"


def _streaming(stack: RunnerStack, agent: Agent, label: str) -> tuple[str, str]:
    """Start a workflow streaming on ``agent``; (execution id, job id) once chunks arrive."""
    stack.put_workflow(label, runner_workflow(label, {"id": agent.runner_id}, ["sh", "-c", STREAM]))
    execution_id = stack.hook(label)
    job_id = wait_until(
        "the job written", lambda: next((j.id for j in stack.jobs_of(agent.runner_id)), None), 30
    )
    wait_until("chunks arriving", lambda: len(stack.log_seqs(job_id)) >= 3, 30, 0.05)
    return execution_id, job_id


def _cut_and_refused(
    stack: RunnerStack, agent: Agent, job_id: str, put_at: float, put_at_utc: datetime
) -> tuple[float, float]:
    """Seconds from the PUT until the runner read offline, and until the last chunk was stored.

    The job prints every 0.1 s, so chunks stop being stored only when the stream is
    cut; while reconnects are refused none arrives and the runner stays offline.
    """
    agent.wait_status("offline", timeout_s=CUT_WITHIN_S + 10)
    offline_after = time.monotonic() - put_at
    time.sleep(STAYS_OUT_S)
    assert agent.view()["status"] == "offline", stack.tails(agent)
    rows = stack.log_rows(job_id)
    last_chunk_after = (max(row.at for row in rows) - put_at_utc).total_seconds()
    time.sleep(1)
    assert len(stack.log_seqs(job_id)) == len(rows), "chunks still stored after the cut"
    assert agent.running(), "the runner gave up instead of retrying"
    return offline_after, last_chunk_after


def test_denylist_cuts_the_stream_fails_the_step_and_refuses_reconnects_until_removed(
    stack: RunnerStack,
):
    agent = stack.enroll("suspect")
    execution_id, job_id = _streaming(stack, agent, "deny")

    put_at, put_at_utc = time.monotonic(), utcnow()
    response = stack.request(
        "PUT", f"/api/ops/runner-denylist/{agent.runner_id}", json={"reason": "host compromised"}
    )
    assert response.status_code in (200, 201, 204), response.text
    offline_after, cut_after = _cut_and_refused(stack, agent, job_id, put_at, put_at_utc)
    assert offline_after <= CUT_WITHIN_S, f"offline {offline_after:.1f} s after the PUT"
    assert cut_after <= CUT_WITHIN_S, f"last chunk stored {cut_after:.1f} s after the PUT"

    view = stack.wait_execution(execution_id, timeout_s=20)
    assert view["status"] == "failed"
    error = view["steps"][0]["error"]
    assert "denylist" in error and "host compromised" in error, error
    assert stack.job(job_id).status == "denied"
    assert "denylist" in agent.output(), agent.output()[-3000:]
    listed = stack.get("/api/ops/runner-denylist").json()
    assert agent.runner_id in str(listed)

    response = stack.request("DELETE", f"/api/ops/runner-denylist/{agent.runner_id}")
    assert response.status_code in (200, 204), response.text
    agent.wait_status("online", timeout_s=30)
    stack.put_workflow("after", runner_workflow("after", {"id": agent.runner_id}, ["true"]))
    assert stack.wait_execution(stack.hook("after"))["status"] == "succeeded"
    print(f"denylist: offline {offline_after:.1f} s, last chunk {cut_after:.1f} s after the PUT")


def test_revoked_fingerprint_cuts_the_stream_fails_the_step_and_refuses_reconnects_until_unrevoked(
    stack: RunnerStack,
):
    agent = stack.enroll("leaky")
    bystander = stack.enroll("bystander")
    execution_id, job_id = _streaming(stack, agent, "revoke")
    fingerprint = agent.row().cert_fingerprint
    assert fingerprint and len(fingerprint) == 64

    put_at, put_at_utc = time.monotonic(), utcnow()
    response = stack.request(
        "PUT", f"/api/ops/runner-revocations/{fingerprint}", json={"reason": "key leaked"}
    )
    assert response.status_code in (200, 201, 204), response.text
    offline_after, cut_after = _cut_and_refused(stack, agent, job_id, put_at, put_at_utc)
    assert offline_after <= CUT_WITHIN_S, f"offline {offline_after:.1f} s after the PUT"
    assert cut_after <= CUT_WITHIN_S, f"last chunk stored {cut_after:.1f} s after the PUT"
    assert bystander.view()["status"] == "online"

    view = stack.wait_execution(execution_id, timeout_s=20)
    assert view["status"] == "failed"
    error = view["steps"][0]["error"]
    assert "revoked" in error and fingerprint[:16] in error, error
    assert "revoked" in agent.output(), agent.output()[-3000:]
    assert fingerprint in str(stack.get("/api/ops/runner-revocations").json())

    response = stack.request("DELETE", f"/api/ops/runner-revocations/{fingerprint}")
    assert response.status_code in (200, 204), response.text
    agent.wait_status("online", timeout_s=30)
    print(f"revocation: offline {offline_after:.1f} s, last chunk {cut_after:.1f} s after the PUT")
