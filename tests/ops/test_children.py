"""Children run in their own process group and are stopped whole, stragglers included."""

from __future__ import annotations

import os
import sys
import time

import psutil

from ops.children import Child, stop_all

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
    "print('ready', flush=True); time.sleep(60)"  # fmt: skip


def started(name: str, *argv: str) -> Child:
    child = Child(name, argv)
    child.start(dict(os.environ))
    return child


def test_a_child_leads_its_own_session():
    child = started("sleeper", sys.executable, "-c", "import time; time.sleep(60)")
    try:
        assert os.getpgid(child.pid) == child.pid
        assert os.getsid(child.pid) == child.pid
    finally:
        assert stop_all([child], 5000) == []


def test_a_cooperative_child_stops_on_sigterm():
    child = started("sleeper", sys.executable, "-c", "import time; time.sleep(60)")

    assert stop_all([child], 5000) == []
    assert child.poll() is not None


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout():
    child = started("stubborn", sys.executable, "-c", IGNORES_SIGTERM)
    assert child.process.stdout.readline() == b"ready\n"
    began = time.monotonic()

    assert stop_all([child], 300) == [child]
    assert child.poll() is not None
    assert time.monotonic() - began < 5


def test_grandchildren_left_by_the_leader_are_killed():
    # The leader exits on SIGTERM without waiting for the grandchild it started.
    child = started("parent", "sh", "-c", "sleep 300 & echo $!; wait")
    grandchild = psutil.Process(int(child.process.stdout.readline()))

    stop_all([child], 5000)

    assert psutil.wait_procs([grandchild], timeout=5)[1] == []


def test_giving_up_skips_the_wait():
    child = started("stubborn", sys.executable, "-c", IGNORES_SIGTERM)
    child.process.stdout.readline()
    began = time.monotonic()

    assert stop_all([child], 60_000, give_up=lambda: True) == [child]
    assert time.monotonic() - began < 5
