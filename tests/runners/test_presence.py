"""A frozen runner is offline within 15 s; thawed, it is online again.

Must show (issue 11): SIGSTOP of a runner -> offline within 15 s; SIGCONT -> online again.
"""

from __future__ import annotations

from tests.support.runner_stack import RunnerStack, runner_workflow

#: The issue's bound for noticing a frozen runner, in seconds.
OFFLINE_WITHIN_S = 15


def test_sigstop_offline_within_15_s_and_sigcont_online_again(stack: RunnerStack):
    frozen = stack.enroll("frozen")
    other = stack.enroll("other")

    frozen.freeze()
    try:
        took = frozen.wait_status("offline", timeout_s=OFFLINE_WITHIN_S + 5)
    finally:
        frozen.thaw()
    assert took <= OFFLINE_WITHIN_S, f"offline after {took:.1f} s"

    back = frozen.wait_status("online", timeout_s=30)
    assert other.view()["status"] == "online"
    # Back for real: it takes jobs again.
    stack.put_workflow("thawed", runner_workflow("thawed", {"id": frozen.runner_id}, ["true"]))
    assert stack.wait_execution(stack.hook("thawed"))["status"] == "succeeded"
    print(f"frozen runner offline after {took:.1f} s, online {back:.1f} s after SIGCONT")
