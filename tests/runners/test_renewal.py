"""Certificate renewal with a 60 s lifetime, and re-enrollment by the fallback hook once a certificate expired.

Must show (issue 11): with a 60 s certificate lifetime the runner renews at least
twice with no failed job; an expired certificate plus the fallback hook ->
re-enrolled under the same runner id.

One stack for both: the second runner's certificate expires (it is not started)
while the first one renews twice.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from shared.models import utcnow
from tests.support.runner_stack import RunnerStack, runner_workflow

#: Certificate lifetime of this stack, in seconds (runners renew at 2/3 of it).
CERT_TTL_S = 60
#: Seconds between session token rotations in this stack.
ROTATION_S = 15
#: Longest wait for two renewals (at about 40 s and 80 s), in seconds.
TWO_RENEWALS_WITHIN_S = 150


def test_renews_twice_with_no_failed_job_and_an_expired_runner_reenrolls_by_its_hook(
    runner_stack, tmp_path: Path
):
    stack: RunnerStack = runner_stack(
        runner_cert_ttl_seconds=str(CERT_TTL_S),
        # Session tokens rotate meanwhile too: jobs must not notice either change.
        runner_token_rotation_seconds=str(ROTATION_S),
        runner_token_grace_seconds="5",
    )
    renewing = stack.enroll("renewing", labels={"role": "renew"})
    first_token = renewing.session_token()
    sleeper = stack.enroll("sleeper", labels={"role": "sleep"}, start=False)
    sleeper_not_after = sleeper.row().cert_not_after
    stack.put_workflow(
        "tick", runner_workflow("tick", {"labels": {"role": "renew"}}, ["sh", "-c", "echo tick"])
    )

    started = time.monotonic()
    statuses = []
    while renewing.certificates() < 3:
        assert time.monotonic() - started < TWO_RENEWALS_WITHIN_S, (
            f"{renewing.certificates() - 1} renewal(s) in {TWO_RENEWALS_WITHIN_S} s\n"
            + stack.tails(renewing)
        )
        view = stack.wait_execution(stack.hook("tick"), timeout_s=30)
        statuses.append(view["status"])
        assert view["status"] == "succeeded", (view, stack.tails(renewing))
        time.sleep(2)
    renewals = renewing.certificates() - 1
    assert renewals >= 2 and renewing.view()["status"] == "online"
    assert set(statuses) == {"succeeded"} and len(statuses) >= 10, statuses
    assert renewing.session_token() != first_token, "the session token was never rotated"
    # Each certificate lasts 60 s: the newest is one issued by a renewal.
    assert renewing.row().cert_not_after > sleeper_not_after

    # The sleeper's only certificate is past its not_after by now.
    while sleeper.row().cert_not_after + timedelta(seconds=2) > utcnow():
        time.sleep(1)
    token = stack.create_token()["token"]
    hook_file = tmp_path / "fresh-token"
    hook_file.write_text(token + "\n")
    sleeper.start(AISOPSFLOW_RUNNER_RENEWAL_HOOK=f"cat {hook_file}")
    sleeper.wait_status("online", timeout_s=60)
    assert sleeper.certificates() == 2
    listed = [item["id"] for item in stack.get("/api/runners").json()["items"]]
    assert sorted(listed) == sorted([renewing.runner_id, sleeper.runner_id])
    stack.put_workflow(
        "wake", runner_workflow("wake", {"labels": {"role": "sleep"}}, ["sh", "-c", "echo awake"])
    )
    view = stack.wait_execution(stack.hook("wake"))
    assert view["status"] == "succeeded", view
    assert view["steps"][0]["output"]["runner_id"] == sleeper.runner_id
