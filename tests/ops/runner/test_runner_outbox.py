"""The SQLite outbox: replay order, acks, the seen-nonce cache and the journal survive a reopen."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

from ops.rpc import runner_pb2
from ops.runner.agent import Agent
from ops.runner.config import RunnerConfig
from ops.runner.groups import kill_orphaned_job
from ops.runner.outbox import Outbox
from ops.runner.state import RunnerState
from shared.domain import job_signing


def test_unacked_items_replay_in_job_then_seq_order_and_acks_remove_them(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.accept("jb_b", "n1", 2_000_000_000, 1)
    outbox.accept("jb_a", "n2", 2_000_000_000, 1)
    outbox.add_log("jb_b", 1, b"b1")
    outbox.add_log("jb_a", 1, b"a1")
    outbox.add_log("jb_b", 2, b"b2")
    outbox.add_log("jb_a", 2, b"a2")
    outbox.finish("jb_a", 3, b"a-result", 5)

    assert [(i.job_id, i.seq, i.kind) for i in outbox.unacked()] == [
        ("jb_a", 1, "log"),
        ("jb_a", 2, "log"),
        ("jb_a", 3, "result"),
        ("jb_b", 1, "log"),
        ("jb_b", 2, "log"),
    ]

    outbox.ack("jb_a", 1)
    outbox.ack("jb_a", 3)
    outbox.ack("jb_a", 3)  # a duplicate ack is harmless
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite3")

    assert [(i.job_id, i.seq) for i in reopened.unacked()] == [
        ("jb_a", 2),
        ("jb_b", 1),
        ("jb_b", 2),
    ]
    # The acknowledged result stays for a redelivery of the job.
    result = reopened.result("jb_a")
    assert result is not None and result.acked and result.body == b"a-result"
    assert reopened.journal("jb_a").state == "finished"
    assert reopened.journal("jb_b").last_seq == 2


def test_seen_nonces_survive_a_reopen_and_expire(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    now = time.time()
    outbox.accept("jb_old", "old-nonce", int(now) - 3600, 1)
    outbox.accept("jb_new", "new-nonce", int(now) + 300, 1)
    outbox.close()

    reopened = Outbox(tmp_path / "outbox.sqlite3")
    assert reopened.nonce_owner("new-nonce") == "jb_new"
    assert reopened.nonce_owner("old-nonce") == "jb_old"

    reopened.prune(now)

    assert reopened.nonce_owner("new-nonce") == "jb_new"
    assert reopened.nonce_owner("old-nonce") is None


def test_the_database_is_private(tmp_path: Path) -> None:
    Outbox(tmp_path / "outbox.sqlite3").close()

    assert stat.S_IMODE((tmp_path / "outbox.sqlite3").stat().st_mode) == 0o600


def test_state_files_are_private(state: RunnerState) -> None:
    assert stat.S_IMODE(state.directory.stat().st_mode) == 0o700
    for path in state.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_job_left_running_by_a_killed_runner_is_killed_and_reported_lost(
    state: RunnerState, config: RunnerConfig
) -> None:
    """Given a job journaled as accepted whose process group is still running."""
    child = subprocess.Popen(
        ["sleep", "300"], start_new_session=True, env={"AISOPSFLOW_JOB_ID": "jb_running"}
    )
    outbox = Outbox(state.outbox_path)
    outbox.accept("jb_running", "nonce-1", int(time.time()) + 300, 1_000)
    outbox.set_pgid("jb_running", child.pid)
    outbox.add_log("jb_running", 1, b"chunk-1")
    outbox.add_log("jb_running", 2, b"chunk-2")
    outbox.close()

    async def restart() -> int:
        agent = Agent(config, state)
        try:
            return agent.recover_lost()
        finally:
            agent.outbox.close()

    assert asyncio.run(restart()) == 1

    assert child.wait(timeout=5) == -signal.SIGKILL
    outbox = Outbox(state.outbox_path)
    items = outbox.unacked("jb_running")
    assert [(i.seq, i.kind) for i in items] == [(1, "log"), (2, "log"), (3, "result")]
    result = runner_pb2.JobResult.FromString(items[-1].body)
    identity_public = job_signing.public_key_raw(state.identity_key())
    document = job_signing.verify(identity_public, result.payload, result.signature)
    assert document["status"] == "lost" and document["last_seq"] == 2
    assert "not run again" in document["error"]
    assert outbox.unfinished() == []

    # A second restart reports nothing more.
    outbox.close()
    assert asyncio.run(restart()) == 0
    assert os.path.exists(state.outbox_path)


def test_a_process_group_that_is_not_the_jobs_is_left_alone(tmp_path: Path) -> None:
    """A pgid journaled before a crash may belong to another program by now."""
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True, env={})
    try:
        assert not kill_orphaned_job("jb_gone", stranger.pid)
        assert stranger.poll() is None
        os.killpg(stranger.pid, 0)
    finally:
        stranger.kill()
        stranger.wait()
