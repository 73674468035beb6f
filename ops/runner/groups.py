"""Process groups of jobs: signal them, tell whether they live, end what a crash left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def kill_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A pgid reused by another user's process after a crash: not ours to kill.
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still there."""
    return kill_group(pgid, 0)


def _group_carries_job(job_id: str, pgid: int, proc: Path) -> bool:
    """Whether a process of group ``pgid`` has ``job_id`` in its environment (it is that job's)."""
    marker = f"AISOPSFLOW_JOB_ID={job_id}".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False


def kill_orphaned_job(job_id: str, pgid: int, proc: Path = Path("/proc")) -> bool:
    """Kill what is left of a job a crashed runner started; True when something was killed.

    A pgid from before a crash (or a reboot) may since belong to someone else, so
    where /proc exists the group is only killed if one of its processes still
    carries the job's AISOPSFLOW_JOB_ID.
    """
    if not group_alive(pgid):
        return False
    if proc.is_dir() and not _group_carries_job(job_id, pgid, proc):
        return False
    return kill_group(pgid, signal.SIGKILL)
