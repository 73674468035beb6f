"""Jobs run as real process groups: both streams in order, exit codes, timeouts, caps."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from ops.runner.chunks import CHUNK_BYTES
from ops.runner.jobs import JobRun, Outcome, job_environment
from ops.runner.verify import Job


def make_job(**fields: object) -> Job:
    values: dict[str, object] = {
        "job_id": "jb_test",
        "tenant_id": "tn_alpha",
        "runner_id": "rn_one",
        "argv": None,
        "script": None,
        "shell": None,
        "env": {},
        "cwd": None,
        "timeout_seconds": 30,
        "not_after": int(time.time()) + 300,
        "nonce": "n",
    }
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


def run(job: Job, *, cap: int = 1024 * 1024, cancel_after_s: float | None = None):
    """(outcome, [(stream, data), ...], pgid) of running ``job`` to its end."""
    chunks: list[tuple[str, bytes]] = []
    pgids: list[int] = []

    async def main() -> Outcome:
        job_run = JobRun(
            job,
            sink=lambda stream, data: chunks.append((stream, data)),
            max_output_bytes=cap,
            kill_grace_ms=500,
            on_started=pgids.append,
        )
        if cancel_after_s is not None:
            asyncio.get_running_loop().call_later(cancel_after_s, job_run.cancel, "operator")
        return await job_run.run()

    outcome = asyncio.run(main())
    return outcome, chunks, (pgids[0] if pgids else None)


def joined(chunks: list[tuple[str, bytes]], stream: str) -> bytes:
    return b"".join(data for name, data in chunks if name == stream)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def living_members(pgid: int) -> list[int]:
    """Pids of the group that are not zombies (pid 1 of a container may never reap them)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def test_both_streams_in_read_order_and_exit_code_3() -> None:
    """Given a command writing to stdout then stderr then stdout, exiting 3."""
    job = make_job(
        argv=["sh", "-c", "echo out-1; sleep 0.2; echo err-1 >&2; sleep 0.2; echo out-2; exit 3"]
    )

    outcome, chunks, _ = run(job)

    assert outcome.status == "failed"
    assert outcome.exit_code == 3
    assert outcome.error == ""
    assert [name for name, _ in chunks] == ["stdout", "stderr", "stdout"]
    assert joined(chunks, "stdout") == b"out-1\nout-2\n"
    assert joined(chunks, "stderr") == b"err-1\n"
    assert outcome.stdout_bytes == 12 and outcome.stderr_bytes == 6
    assert not outcome.stdout_capped and not outcome.stderr_capped
    assert outcome.duration_ms >= 400


def test_script_runs_in_the_named_shell_with_env_and_cwd(tmp_path: Path) -> None:
    job = make_job(  # noqa: S604 - a job's script in its shell is what is under test
        script='echo "$GREETING from $(pwd)"; echo "${BASH_VERSION:+bash}"; echo "$HOSTILE"',
        shell="bash",
        env={"GREETING": "hello"},
        cwd=str(tmp_path),
    )
    os.environ["HOSTILE"] = "leaked"
    try:
        outcome, chunks, _ = run(job)
    finally:
        del os.environ["HOSTILE"]

    assert outcome.status == "succeeded" and outcome.exit_code == 0
    # The runner's own environment does not leak into jobs beyond a few basics.
    assert joined(chunks, "stdout") == f"hello from {tmp_path}\nbash\n\n".encode()


def test_minimal_environment_keeps_path_and_adds_job_env() -> None:
    env = job_environment(make_job(env={"A": "1"}), {"PATH": "/bin", "SECRET": "x"})

    assert env["PATH"] == "/bin" and env["A"] == "1" and env["AISOPSFLOW_JOB_ID"] == "jb_test"
    assert "SECRET" not in env


def test_timeout_kills_the_whole_group_including_a_grandchild(tmp_path: Path) -> None:
    """Given a command whose background grandchild would outlive it."""
    pid_file = tmp_path / "grandchild.pid"
    job = make_job(
        argv=["sh", "-c", f"sleep 300 & echo $! > {pid_file}; echo started; sleep 300"],
        timeout_seconds=1,
    )

    started = time.monotonic()
    outcome, chunks, pgid = run(job)

    assert outcome.status == "timed_out"
    assert outcome.error == "timed out after 1 s"
    assert time.monotonic() - started < 10
    assert joined(chunks, "stdout") == b"started\n"
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)
    assert pgid is not None


def test_a_term_ignoring_job_is_killed_after_the_grace(tmp_path: Path) -> None:
    job = make_job(argv=["sh", "-c", "trap '' TERM; echo ready; sleep 300"], timeout_seconds=1)

    outcome, _, pgid = run(job)

    assert outcome.status == "timed_out"
    assert pgid is not None
    assert living_members(pgid) == []


def test_each_stream_is_capped_and_the_cap_reported() -> None:
    job = make_job(
        argv=["sh", "-c", "head -c 50000 /dev/zero; head -c 10 /dev/zero >&2"],
    )

    outcome, chunks, _ = run(job, cap=20_000)

    assert len(joined(chunks, "stdout")) == 20_000
    assert len(joined(chunks, "stderr")) == 10
    assert outcome.stdout_bytes == 50_000 and outcome.stdout_capped
    assert outcome.stderr_bytes == 10 and not outcome.stderr_capped
    assert outcome.status == "succeeded"


def test_chunks_are_at_most_16_kib() -> None:
    outcome, chunks, _ = run(make_job(argv=["head", "-c", "200000", "/dev/zero"]))

    assert outcome.stdout_bytes == 200_000
    assert len(joined(chunks, "stdout")) == 200_000
    assert max(len(data) for _, data in chunks) <= CHUNK_BYTES
    assert len(chunks) >= 200_000 // CHUNK_BYTES


def test_cancel_stops_the_group_and_says_so() -> None:
    outcome, _, _ = run(make_job(argv=["sleep", "300"]), cancel_after_s=0.3)

    assert outcome.status == "failed"
    assert outcome.error == "cancelled: operator"
    assert outcome.duration_ms < 5_000


def test_a_command_that_cannot_start_fails_with_the_reason() -> None:
    outcome, chunks, pgid = run(make_job(argv=["/nonexistent/command"]))

    assert outcome.status == "failed"
    assert outcome.exit_code is None
    assert "cannot start the command" in outcome.error and "/nonexistent/command" in outcome.error
    assert chunks == [] and pgid is None


def test_a_job_killed_by_a_signal_reports_128_plus_signal() -> None:
    outcome, _, _ = run(make_job(argv=["sh", "-c", "kill -9 $$"]))

    assert outcome.status == "failed"
    assert outcome.exit_code == 137
    assert outcome.error == "killed by SIGKILL"


def test_a_background_child_left_behind_is_ended_with_the_job(tmp_path: Path) -> None:
    """Given a command that exits 0 but leaves a child holding its stdout."""
    pid_file = tmp_path / "child.pid"
    job = make_job(argv=["sh", "-c", f"sleep 300 & echo $! > {pid_file}; echo done"])

    started = time.monotonic()
    outcome, chunks, _ = run(job)

    assert outcome.status == "succeeded" and outcome.exit_code == 0
    assert joined(chunks, "stdout") == b"done\n"
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
