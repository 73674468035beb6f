"""The fault suite: a burst of webhooks while one part of the stack fails; nothing is lost or run twice.

Each scenario starts real processes (gunicorn API, Dramatiq worker, scheduler,
a private redis-server, the Teams plugin where it matters), sends a burst of
unique webhooks over HTTP while the fault happens, waits (bounded) for the
accepted executions to end, and prints one line:

    fault=<name> accepted=N succeeded=N lost=N run_twice=N (...)

``tests/support/burst.py`` defines each figure. Every step of the workflow
calls a loopback counter, so a step that ran again is seen where it matters:
at the target.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

import pytest

from shared.db import SQLITE_BUSY_TIMEOUT_MS, connection
from shared.domain.engine_rules import ENDED_EXECUTION
from shared.models import Execution, StepRun
from tests.support.burst import Answer, Burst, Tally, tally, unretryable
from tests.support.fault_stack import FaultStack

WORKFLOW_ID = "fault-burst"
#: Webhooks per burst, and the seconds they are spread over.
BURST_SIZE = 150
BURST_SECONDS = 6.0
#: Longest wait for the accepted executions to end once the burst is sent, in seconds.
#: The slowest recovery is a message lost with Redis: the reconciler re-sends it
#: 15 s after it was due (PENDING_RESEND_AFTER_MS).
END_WITHIN_S = 90
#: Longest hold of the database lock that must outlast the API's busy timeout, in seconds.
LONG_LOCK_MAX_S = 3 * SQLITE_BUSY_TIMEOUT_MS / 1000
#: A step's timeout: its lease is this plus 5 s, so a dead worker's step is re-run soon,
#: yet far longer than the loopback counter takes to answer (see tests/support/burst.py).
STEP_TIMEOUT_S = 6


def workflow(counter_url: str, *, notify: bool = False) -> str:
    """Two http steps to the counter (each its own message), and a Teams notify if asked."""
    text = f"""
id: {WORKFLOW_ID}
name: fault suite burst
triggers: [{{type: webhook}}]
steps:
  - id: first
    type: http
    method: POST
    url: {counter_url}/first
    timeout_seconds: {STEP_TIMEOUT_S}
    retry: {{max: 5, backoff_ms: 500, max_backoff_ms: 2000}}
    json: {{n: "{{{{ body.n }}}}"}}
  - id: second
    type: http
    method: POST
    url: {counter_url}/second
    timeout_seconds: {STEP_TIMEOUT_S}
    retry: {{max: 5, backoff_ms: 500, max_backoff_ms: 2000}}
    json: {{n: "{{{{ body.n }}}}"}}
"""
    if notify:
        text += f"""
  - id: notify
    type: notify
    targets: ["teams:{counter_url}/notify"]
    message: "burst webhook {{{{ body.n }}}} of {{{{ execution.id }}}}"
    timeout_seconds: {STEP_TIMEOUT_S}
    retry: {{max: 10, backoff_ms: 500, max_backoff_ms: 2000}}
"""
    return text


def run_burst(
    stack: FaultStack,
    report: Callable[[str], None],
    fault: str,
    inject: Callable[[Burst, Tally], object],
    *,
    notify: bool = False,
    count: int = BURST_SIZE,
    seconds: float = BURST_SECONDS,
    before_burst: Callable[[], object] = lambda: None,
) -> Tally:
    """Send the burst, run ``inject(burst, tally)`` meanwhile, count, print the line, assert.

    Nothing accepted may be lost or run twice, every accepted execution must
    succeed (each fault here is one the engine recovers from), and every
    request not accepted must have had an answer a sender can retry.
    """
    stack.put_workflow(WORKFLOW_ID, workflow(stack.counter.url, notify=notify))
    before_burst()
    began = time.monotonic()
    result = Tally(fault)
    burst = Burst(stack.api_url, WORKFLOW_ID, count=count, seconds=seconds).start()
    inject(burst, result)
    answers = burst.join()
    steps = ["first", "second", *(["notify"] if notify else [])]
    tally(result, WORKFLOW_ID, steps, answers, stack.counter.hits, wait_s=END_WITHIN_S, began=began)
    result.notes["resent_by_reconciler"] = stack.reconciler_resent()
    report(result.line())
    bad = unretryable(answers)
    assert bad == [], f"{len(bad)} answers a sender could not retry: {bad[:3]}{stack.logs()}"
    assert result.lost == 0, f"lost {result.lost_ids[:10]}{stack.logs()}"
    assert result.run_twice == 0, f"run twice: {result.twice[:10]}{stack.logs()}"
    assert result.succeeded == result.accepted, f"{result.statuses}{stack.logs()}"
    return result


def unfinished(answers: list[Answer]) -> int:
    """Accepted executions that have not ended yet."""
    ids = [answer.body["execution_id"] for answer in answers if answer.accepted]
    with connection():
        return (
            Execution.select()
            .where(Execution.id.in_(ids), Execution.status.not_in(list(ENDED_EXECUTION)))
            .count()
        )


def test_redis_restarted_mid_burst(fault_stack, report):
    stack = fault_stack()

    def restart_redis(burst: Burst, result: Tally) -> None:
        burst.wait_answered(BURST_SIZE // 3)
        stack.redis.kill()  # every queued message goes with it
        time.sleep(2)
        stack.redis.start()

    result = run_burst(stack, report, "redis_restarted", restart_redis)
    assert result.notes["resent_by_reconciler"] > 0, "the restart lost no message: no fault"


def hold_write_lock(
    database_path: str,
    seconds: float,
    *,
    released_early: Callable[[], bool] = lambda: False,
    on_locked: Callable[[], object] = lambda: None,
) -> float:
    """Hold SQLite's write lock from another connection (a backup, a sqlite3 shell).

    Held for ``seconds``, or less once ``released_early()`` is true; returns the seconds held.
    """
    other = sqlite3.connect(database_path, timeout=30, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        on_locked()
        began = time.monotonic()
        while time.monotonic() - began < seconds and not released_early():
            time.sleep(0.05)
        other.execute("ROLLBACK")
        return time.monotonic() - began
    finally:
        other.close()


def sqlite_path(stack: FaultStack) -> str:
    return stack.settings.resolved_database_url.split(":///", 1)[1]


def test_database_locked_for_5_s(fault_stack, report):
    stack = fault_stack()

    def lock_database(burst: Burst, result: Tally) -> None:
        burst.wait_answered(BURST_SIZE // 3)
        hold_write_lock(sqlite_path(stack), 5)

    run_burst(stack, report, "database_locked_5s", lock_database)


def test_database_locked_past_the_busy_timeout_answers_503(fault_stack, report):
    """Locked past SQLite's busy timeout: a request that cannot wait gets a retryable 503, never a 500.

    The lock is taken before the burst, while the worker is idle, so the first
    writer to wait is a webhook (writers queue one behind the other, each
    waiting its own busy timeout), and held until the API gives up on one.
    """
    stack = fault_stack()
    locked, refused, held = threading.Event(), threading.Event(), []
    holder = threading.Thread(
        target=lambda: held.append(
            hold_write_lock(
                sqlite_path(stack),
                LONG_LOCK_MAX_S,
                released_early=refused.is_set,
                on_locked=locked.set,
            )
        ),
        daemon=True,
    )

    def lock_database() -> None:
        holder.start()
        assert locked.wait(30), "could not take the database's write lock"

    def release_once_refused(burst: Burst, result: Tally) -> None:
        while holder.is_alive():
            if any(not answer.accepted for answer in list(burst.answers)):
                refused.set()
            time.sleep(0.05)
        result.notes["locked_s"] = round(held[0], 1)

    result = run_burst(
        stack,
        report,
        "database_locked_past_busy_timeout",
        release_once_refused,
        count=40,
        seconds=3,
        before_burst=lock_database,
    )
    assert result.refused > 0, "the lock never outlasted the API's wait"


def test_plugin_down_while_notify_steps_run(fault_stack, report):
    stack = fault_stack(plugin=True)
    stack.counter.route("/notify", body=1)  # a Teams incoming webhook answers "1"

    def kill_plugin(burst: Burst, result: Tally) -> None:
        burst.wait_answered(BURST_SIZE // 3)
        stack.plugin.kill()
        time.sleep(4)
        stack.start_plugin()

    run_burst(stack, report, "plugin_down", kill_plugin, notify=True)
    with connection():
        retried = StepRun.select().where(StepRun.step_id == "notify", StepRun.attempt > 1).count()
    assert retried > 0, "no notify step found the plugin down: no fault"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_worker_sigkilled_in_a_loop(fault_stack, report, database_url, backend):
    stack = fault_stack(database_url=database_url)
    # Calls that take a while keep every worker thread inside a step when it is killed.
    stack.counter.route("/first", delay_seconds=0.2)

    def kill_loop(burst: Burst, result: Tally) -> None:
        burst.wait_answered(BURST_SIZE // 5)
        for _ in range(5):
            time.sleep(1)
            stack.kill_worker()
            stack.start_worker()
        result.notes["kills"] = 5

    result = run_burst(stack, report, f"worker_sigkill_loop[{backend}]", kill_loop, seconds=10)
    assert result.notes["resent_by_reconciler"] > 0, "no kill caught a step in flight: no fault"


def test_scheduler_stopped_and_restarted(fault_stack, report):
    stack = fault_stack()
    # Calls that take a while keep every worker thread inside a step when it is killed.
    stack.counter.route("/first", delay_seconds=0.2)

    def reconciler_gap(burst: Burst, result: Tally) -> None:
        burst.wait_answered(BURST_SIZE // 4)
        stack.scheduler.stop()
        # What only the reconciler recovers: a dead worker's leases and prefetched messages.
        burst.wait_answered(BURST_SIZE // 2)
        stack.kill_worker()
        stack.start_worker()
        burst.join()
        time.sleep(STEP_TIMEOUT_S + 7)  # past every lease of the dead worker
        result.notes["unfinished_at_restart"] = unfinished(burst.answers)
        stack.start_scheduler()

    result = run_burst(stack, report, "scheduler_restarted", reconciler_gap)
    assert result.notes["unfinished_at_restart"] > 0, "the gap stranded nothing: no fault"
