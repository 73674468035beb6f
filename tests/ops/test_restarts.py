"""Restart decisions of `up`: the backoff schedule, its reset, and when a crash loop gives up."""

from __future__ import annotations

import pytest

from ops.restarts import (
    Crash,
    CrashHistory,
    RestartPolicy,
    after_crash,
    crash_loop_report,
    describe_exit,
)

POLICY = RestartPolicy(
    first_delay_ms=500,
    max_delay_ms=30_000,
    stable_after_ms=30_000,
    crash_limit=5,
    crash_window_ms=60_000,
)


def crash_sequence(times_ms, up_for_ms, policy=POLICY):
    """Each crash's verdict, crashing at each of ``times_ms`` after ``up_for_ms`` of running."""
    history = CrashHistory()
    verdicts = []
    for at_ms in times_ms:
        verdict = after_crash(history, at_ms=at_ms, up_for_ms=up_for_ms, exit_code=1, policy=policy)
        history = verdict.history
        verdicts.append(verdict)
    return verdicts


def test_quick_crashes_double_the_pause():
    many = RestartPolicy(crash_limit=100)
    # One crash a minute, each after 1 s of running: never 5 in a window, always quick.
    verdicts = crash_sequence(range(0, 10 * 61_000, 61_000), up_for_ms=1000, policy=many)

    assert [v.restart_in_ms for v in verdicts] == [
        500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000,
    ]  # fmt: skip


def test_a_child_that_ran_long_enough_starts_again_from_the_first_pause():
    quick = crash_sequence([0, 1000, 3000], up_for_ms=100)
    history = quick[-1].history

    stable = after_crash(history, at_ms=40_000, up_for_ms=30_000, exit_code=1, policy=POLICY)
    almost = after_crash(history, at_ms=40_000, up_for_ms=29_999, exit_code=1, policy=POLICY)

    assert quick[-1].restart_in_ms == 2000
    assert stable.restart_in_ms == 500 and stable.history.streak == 1
    assert almost.restart_in_ms == 4000


def test_the_fifth_crash_within_the_window_gives_up():
    verdicts = crash_sequence([0, 1000, 3000, 7000, 15_000], up_for_ms=100)

    assert [v.give_up for v in verdicts] == [False, False, False, False, True]
    assert len(verdicts[-1].history.crashes) == 5


def test_crashes_older_than_the_window_are_forgotten():
    # Five crashes, but the first fell out of the 60 s window before the fifth.
    verdicts = crash_sequence([0, 20_000, 40_000, 55_000, 60_000], up_for_ms=100)

    assert not verdicts[-1].give_up
    assert [c.at_ms for c in verdicts[-1].history.crashes] == [20_000, 40_000, 55_000, 60_000]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (0, "exited with code 0"),
        (1, "exited with code 1"),
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
        (None, "still running"),
    ],
)
def test_describe_exit(code, words):
    assert describe_exit(code) == words


def test_the_report_names_the_child_its_endings_and_its_last_lines():
    history = CrashHistory((Crash(0, -9), Crash(500, 1), Crash(1500, 1)), streak=3)

    lines = crash_loop_report("worker", history, ["boom", "Traceback: nope"], POLICY)

    assert lines[0] == (
        "worker crashed 3 times within 60 s (killed by SIGKILL, exited with code 1, "
        "exited with code 1); not restarting it, stopping everything"
    )
    assert lines[1:] == ["last 2 lines of worker:", "  boom", "  Traceback: nope"]
    assert crash_loop_report("api", history, [], POLICY)[1] == "api printed nothing"
