"""A runner killed while a job streams logs: after its restart every chunk and the `lost` report arrive once.

Must show (issue 11): SIGKILL of a runner while a job streams logs -> after
restart every unacknowledged chunk and the ``lost`` report arrive exactly once
(count rows) and the command did not run twice (count lines it appended to a file).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from shared.db import connection
from shared.models import AuditLog, RunnerJob
from tests.support.runner_stack import RunnerStack, runner_workflow, wait_until


def test_sigkill_mid_stream_then_restart_stores_each_chunk_once_and_reports_lost_once(
    stack: RunnerStack, tmp_path: Path
):
    agent = stack.enroll("streamer", labels={"role": "stream"})
    appended = tmp_path / "appended.txt"
    script = f"echo started >> {appended}; i=1; while [ $i -le 200 ]; do echo line $i; i=$((i+1)); sleep 0.05; done"
    stack.put_workflow(
        "stream",
        runner_workflow("stream", {"labels": {"role": "stream"}}, ["sh", "-c", script]),
    )
    execution_id = stack.hook("stream")
    job_id = wait_until(
        "the job written", lambda: next((j.id for j in stack.jobs_of(agent.runner_id)), None), 30
    )
    wait_until("a few chunks stored", lambda: len(stack.log_seqs(job_id)) >= 5, 30, 0.02)

    # Freeze the gateway first: the runner keeps reading output into its outbox, and
    # nothing is acknowledged, so the kill leaves unacknowledged chunks behind for sure.
    stack.freeze("gateway")
    try:
        time.sleep(1.5)
        agent.kill()
    finally:
        stack.thaw("gateway")
    time.sleep(1)
    stored_at_kill = len(stack.log_seqs(job_id))
    agent.start()

    job = stack.wait_job(job_id, ("lost",), timeout_s=60)
    agent.wait_status("online")
    time.sleep(2)  # anything replayed twice would land now

    seqs = stack.log_seqs(job_id)
    assert seqs == list(range(1, len(seqs) + 1)), f"gaps or duplicates: {seqs}"
    assert len(seqs) > stored_at_kill, "no chunk was replayed from the outbox"
    print(f"chunks stored when the runner died: {stored_at_kill}; after its restart: {len(seqs)}")
    result = json.loads(job.result_json or "{}")
    assert result["status"] == "lost" and result["runner_id"] == agent.runner_id, result
    assert result["last_seq"] == len(seqs), (result, seqs)
    # The runner saw every item it kept acknowledged, the lost report (the last seq) included.
    wait_until(
        "the runner's outbox acknowledged",
        lambda: all(acked for _, _, acked in agent.outbox_items(job_id)),
        15,
    )
    assert appended.read_text() == "started\n", "the command ran twice"
    with connection():
        jobs = RunnerJob.select().where(RunnerJob.runner == agent.runner_id).count()
        rejected = AuditLog.select().where(AuditLog.action == "runner.result_rejected").count()
    assert jobs == 1 and rejected == 0
    view = stack.wait_execution(execution_id)
    assert view["status"] == "failed"
    assert "lost" in view["steps"][0]["error"], view["steps"][0]
