"""A burst of unique webhooks over HTTP, and the tally of what became of them.

Definitions (what the fault suite prints and asserts):

- **accepted**: the API answered 2xx with an execution id. Anything else must be
  a retryable 503 with the JSON error body and a Retry-After header.
- **succeeded**: an accepted execution that ended ``succeeded``.
- **lost**: an accepted execution with no row, or one that had not reached an
  ended status when the wait ran out.
- **run twice**: a side effect the engine's claim protocol does not explain.
  Each step of the workflow calls the loopback counter, which records every
  request it receives with its wall-clock time. The engine delivers at least
  once: a worker killed after the target answered but before the outcome was
  recorded loses its attempt, and the next attempt calls the target again
  with the same ``Idempotency-Key`` (``<execution>:<step>``) so the target can
  drop the replay. Such replays are expected and counted (``replays``), but
  not as run twice while every call is one claimed attempt made before the
  execution moved on. A (execution, step) counts as run twice when

  1. the target received a call for it after the engine had moved past it:
     after the step's recorded end, after the first call of the next step, or
     after the execution ended (a finished step ran again), or
  2. the target received more calls for it than the attempts the engine
     claimed (``step_runs.attempt``): a call made without a claim;

  and a webhook payload counts as run twice when it became more than one
  execution. Condition 1 assumes no call waits longer than the step's timeout
  between reaching the counter's socket and being recorded (else the worker
  gave up on it and retried, and its late arrival would be a replay): the
  suite's steps have timeouts of seconds and the counter answers at once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

import requests

from shared.db import connection
from shared.domain.engine_rules import ENDED_EXECUTION
from shared.models import Execution, StepRun, Workflow

#: Seconds a sender waits for the API's answer.
REQUEST_TIMEOUT_S = 60
#: An execution id inside a request the counter received.
EXECUTION_ID = re.compile(r"ex_[0-9A-Za-z_-]+")


@dataclass
class Answer:
    """What the API answered to webhook number ``n``."""

    n: int
    status: int | None = None
    body: Any = None
    retry_after: str | None = None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Burst:
    """``count`` webhooks ``{"n": i}`` POSTed to the API, paced evenly over ``seconds``."""

    def __init__(
        self, api_url: str, workflow_id: str, *, count: int, seconds: float, senders: int = 8
    ) -> None:
        self.url = f"{api_url}/api/hooks/{workflow_id}"
        self.count = count
        self.seconds = seconds
        self.senders = senders
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.local = threading.local()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Burst:
        self.thread.start()
        return self

    def _session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def _send(self, n: int) -> None:
        answer = Answer(n)
        try:
            response = self._session().post(self.url, json={"n": n}, timeout=REQUEST_TIMEOUT_S)
            answer.status = response.status_code
            answer.retry_after = response.headers.get("Retry-After")
            try:
                answer.body = response.json()
            except ValueError:
                answer.body = response.text[:500]
        except requests.RequestException as error:
            answer.error = f"{type(error).__name__}: {error}"
        with self.lock:
            self.answers.append(answer)

    def _run(self) -> None:
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.senders) as pool:
            for n in range(self.count):
                delay = began + n * self.seconds / self.count - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._send, n)

    def answered(self) -> int:
        with self.lock:
            return len(self.answers)

    def wait_answered(self, count: int, timeout_s: float = 60) -> None:
        """Block until ``count`` requests have their answer."""
        deadline = time.monotonic() + timeout_s
        while self.answered() < count:
            assert time.monotonic() < deadline, f"{self.answered()}/{count} answered"
            time.sleep(0.02)

    def join(self, timeout_s: float = 120) -> list[Answer]:
        """Wait for every answer; the answers, by webhook number."""
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"burst still sending after {timeout_s} s"
        return sorted(self.answers, key=lambda answer: answer.n)


def unretryable(answers: list[Answer]) -> list[Answer]:
    """Answers that are neither accepted nor a retryable 503 JSON error with Retry-After."""
    bad = []
    for answer in answers:
        if answer.accepted:
            continue
        body = answer.body if isinstance(answer.body, dict) else {}
        retryable = (
            answer.status == 503
            and answer.retry_after is not None
            and body.get("code") == 503
            and bool(body.get("message"))
        )
        if not retryable:
            bad.append(answer)
    return bad


def _epoch(value: Any) -> float:
    return value.replace(tzinfo=timezone.utc).timestamp()


def wait_ended(execution_ids: list[str], timeout_s: float) -> int:
    """Poll the database until every execution ended or ``timeout_s`` passed; how many ended."""
    deadline = time.monotonic() + timeout_s
    ended = 0
    while True:
        with connection():
            ended = (
                Execution.select()
                .where(Execution.id.in_(execution_ids), Execution.status.in_(ENDED_EXECUTION))
                .count()
            )
        if ended == len(execution_ids) or time.monotonic() > deadline:
            return ended
        time.sleep(0.25)


def step_of(hit: dict[str, Any]) -> tuple[str, str] | None:
    """(execution id, step id) a counter request was made for, or None if it names none."""
    headers = {name.lower(): value for name, value in hit["headers"].items()}
    key = headers.get("idempotency-key")
    if key and ":" in key:
        execution_id, step_id = key.split(":", 1)
        return execution_id, step_id
    # A plugin's request (a Teams card) carries no key: the path names the step, the body the execution.
    path = hit["path"].split("?")[0].strip("/").split("/")
    found = EXECUTION_ID.search(hit["path"]) or EXECUTION_ID.search(hit["body"])
    return (found.group(0), path[0]) if found else None


@dataclass
class Tally:
    """The figures of one fault scenario."""

    fault: str
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    succeeded: int = 0
    lost: int = 0
    run_twice: int = 0
    replays: int = 0
    statuses: Counter = field(default_factory=Counter)
    lost_ids: list[str] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Scenario-specific figures, printed after the others.
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one line the suite prints per scenario."""
        other = {k: v for k, v in self.statuses.items() if k != "succeeded"}
        details = {
            "sent": self.sent,
            "refused": self.refused,
            "replays": self.replays,
            "other_endings": dict(other) or 0,
            **self.notes,
            "seconds": round(self.seconds),
        }
        return (
            f"fault={self.fault} accepted={self.accepted} succeeded={self.succeeded} "
            f"lost={self.lost} run_twice={self.run_twice} "
            f"({' '.join(f'{key}={value}' for key, value in details.items())})"
        )


def tally(
    result: Tally,
    workflow_id: str,
    steps: list[str],
    answers: list[Answer],
    hits: dict[str, list[dict[str, Any]]],
    *,
    wait_s: float,
    began: float,
) -> Tally:
    """Wait (bounded) for the accepted executions to end, then count into ``result``; see the module docstring."""
    result.sent = len(answers)
    accepted = {a.n: a.body["execution_id"] for a in answers if a.accepted}
    result.accepted = len(accepted)
    result.refused = len(answers) - len(accepted)
    ids = list(accepted.values())
    wait_ended(ids, wait_s)
    result.seconds = time.monotonic() - began
    with connection():
        workflow = Workflow.get(Workflow.workflow_key == workflow_id)
        rows = {row.id: row for row in Execution.select().where(Execution.workflow == workflow.id)}
        runs = {
            (run.execution_id, run.step_id): run
            for run in StepRun.select().where(StepRun.execution.in_(list(rows)))
        }
    for execution_id in ids:
        row = rows.get(execution_id)
        if row is None or row.status not in ENDED_EXECUTION:
            result.lost_ids.append(execution_id)
        else:
            result.statuses[row.status] += 1
    result.lost = len(result.lost_ids)
    result.succeeded = result.statuses["succeeded"]

    per_payload = Counter(json.loads(row.trigger_context)["body"]["n"] for row in rows.values())
    result.twice += [
        f"payload n={n} became {c} executions" for n, c in per_payload.items() if c > 1
    ]

    calls: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path_hits in hits.values():
        for hit in path_hits:
            key = step_of(hit)
            if key is None:
                result.twice.append(
                    f"a call naming no execution: {hit['path']} {hit['body'][:200]!r}"
                )
            else:
                calls[key].append(hit["received_at"])
    for (execution_id, step_id), times in sorted(calls.items()):
        run = runs.get((execution_id, step_id))
        result.replays += len(times) - 1
        if run is None:
            result.twice.append(f"{execution_id}:{step_id} called without a step run")
            continue
        index = steps.index(step_id)
        execution = rows[execution_id]
        later = calls.get((execution_id, steps[index + 1])) if index + 1 < len(steps) else None
        bounds = [
            _epoch(value) for value in (run.ended_at, execution.ended_at) if value is not None
        ]
        moved_on = min([*bounds, *([min(later)] if later else [])], default=None)
        if moved_on is not None and max(times) > moved_on:
            late = max(times) - moved_on
            result.twice.append(
                f"{execution_id}:{step_id} called {late * 1000:.0f} ms after the execution "
                f"moved past it ({len(times)} call(s), {run.attempt} attempt(s), {run.status})"
            )
        elif len(times) > run.attempt:
            result.twice.append(
                f"{execution_id}:{step_id} called {len(times)} times for {run.attempt} attempt(s)"
            )
    result.run_twice = len(result.twice)
    return result
