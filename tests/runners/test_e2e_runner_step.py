"""A workflow's `runner` step on a labelled runner: exit code and both output streams, in order.

Must show (issue 11): a runner step on a labelled runner runs a command that
writes to stdout and stderr and exits 3 -> the step's output shows exit code 3
and both streams, in order.
"""

from __future__ import annotations

import time

from tests.support.runner_stack import RunnerStack, runner_workflow, wait_until

#: Writes to both streams in turn (a pause between, so the order is the one written) and exits 3.
SCRIPT = (
    "echo out-1; sleep 0.2; echo err-1 >&2; sleep 0.2; "
    "echo out-2; sleep 0.2; echo err-2 >&2; exit 3"
)


def test_a_labelled_runner_runs_the_command_and_the_step_shows_exit_3_and_both_streams(
    stack: RunnerStack,
):
    db = stack.enroll("db", labels={"role": "db"})
    web = stack.enroll("web", labels={"role": "web"})
    stack.put_workflow(
        "exit3",
        runner_workflow("exit3", {"labels": {"role": "db"}}, ["sh", "-c", SCRIPT], expect_exit=[3]),
    )

    view = stack.wait_execution(stack.hook("exit3"))

    assert view["status"] == "succeeded", view
    output = view["steps"][0]["output"]
    assert output["exit_code"] == 3
    assert output["runner_id"] == db.runner_id != web.runner_id
    assert output["stdout"] == "out-1\nout-2\n"
    assert output["stderr"] == "err-1\nerr-2\n"
    job_id = output["job_id"]
    result = stack.get(f"/api/runner/job-results/{job_id}").json()
    assert result["exit_code"] == 3 and result["status"] in ("failed", "succeeded"), result
    log = stack.get(f"/api/runner/job-results/{job_id}/log").json()
    items = log["items"]
    assert [item["seq"] for item in items] == list(range(1, len(items) + 1))
    assert [(item["stream"], item["data"]) for item in items] == [
        ("stdout", "out-1\n"),
        ("stderr", "err-1\n"),
        ("stdout", "out-2\n"),
        ("stderr", "err-2\n"),
    ]


def test_exit_3_not_expected_fails_the_step_with_the_code_and_streams(stack: RunnerStack):
    db = stack.enroll("db", labels={"role": "db"})
    stack.put_workflow(
        "exit3", runner_workflow("exit3", {"labels": {"role": "db"}}, ["sh", "-c", SCRIPT])
    )

    view = stack.wait_execution(stack.hook("exit3"))

    assert view["status"] == "failed", view
    step = view["steps"][0]
    assert step["status"] == "failed"
    assert "exited with code 3" in step["error"], step
    assert step["output"]["exit_code"] == 3 and step["output"]["runner_id"] == db.runner_id
    assert step["output"]["stdout"] == "out-1\nout-2\n"
    assert step["output"]["stderr"] == "err-1\nerr-2\n"


def test_cancelling_the_execution_stops_the_command_on_the_host(stack: RunnerStack, tmp_path):
    db = stack.enroll("db", labels={"role": "db"})
    ticks = tmp_path / "ticks.txt"
    script = f"while true; do echo tick >> {ticks}; sleep 0.1; done"
    stack.put_workflow(
        "forever", runner_workflow("forever", {"labels": {"role": "db"}}, ["sh", "-c", script])
    )
    execution_id = stack.hook("forever")
    wait_until("the command is running", lambda: ticks.exists() and ticks.stat().st_size > 0, 30)

    answer = stack.request("POST", f"/api/executions/{execution_id}/cancel")
    assert answer.status_code == 200, answer.text

    # The reconciler ends the job, the gateway tells the runner, the runner kills the group.
    def stopped() -> bool:
        size = ticks.stat().st_size
        time.sleep(0.5)
        return ticks.stat().st_size == size

    wait_until("the command stopped", stopped, 30, 0.2)
    assert stack.execution(execution_id)["status"] == "cancelled"
    # Ended by whichever came first: the reconciler (cancelled) or the runner's own
    # report of the kill (failed, "cancelled: its execution ended").
    job = wait_until(
        "the job ended",
        lambda: next((j for j in stack.jobs_of(db.runner_id) if j.status != "accepted"), None),
        30,
    )
    assert job.status == "cancelled" or (job.error or "").startswith("cancelled"), (
        job.status,
        job.error,
    )
