"""Engine benchmark: each platform figure beside its bare-Dramatiq twin, same Redis, same worker shape.

A script, not a test: it prints figures and asserts nothing. For each Dramatiq
worker timeout given, it starts the platform worker (``aisopsflow worker``) and a
bare worker (``dramatiq bench.bare_actors:setup``) with the same processes and
threads on the same Redis (two namespaces), then measures

1. throughput: N executions of three ``condition`` steps vs N chains of 3 bare actors;
2. a 40-step sequential workflow vs a 40-actor chain (webhook -> succeeded), twice: 40
   ``http`` steps to a no-op server on 127.0.0.1 (each step its own message), and 40
   ``condition`` steps (pure: worked out and recorded inline, one message in all);
3. sparse latency: one webhook at a time after an idle gap, p50/p99 webhook -> succeeded.

Webhooks go through the API in this process (Flask test client: the full request
path, no HTTP socket). End times are the ones the workers record (``ended_at``, or
the bare chain's last actor), so polling does not skew them. Run from the repo root:

    python bench/engine.py [--n 200] [--threads 4] [--worker-timeouts 1000,30] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import logging
import math
import os
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the repo's packages importable
    sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.bare_actors import CHAIN_QUEUE, HOP, done_key, started_key  # noqa: E402
from ops.processes import child_environ, worker_command  # noqa: E402
from shared.db import connection, database  # noqa: E402
from shared.dispatch import Dispatcher  # noqa: E402
from shared.settings import Settings, load_settings  # noqa: E402

#: Environment variable ``dramatiq.worker`` reads at import: the idle poll ceiling, in milliseconds.
WORKER_TIMEOUT_ENV = "dramatiq_worker_timeout"
#: Dramatiq's own default for WORKER_TIMEOUT_ENV, in milliseconds.
DRAMATIQ_DEFAULT_TIMEOUT_MS = 1000
#: The lower WORKER_TIMEOUT_ENV measured by default, in milliseconds: meets the sparse target.
SUGGESTED_TIMEOUT_MS = 30
#: Steps of the throughput workflow and chain.
SHORT_STEPS = 3
#: Steps of the long sequential workflow and chain (Windmill's benchmark workload).
LONG_STEPS = 40
#: Execution statuses that end an execution.
ENDED = ("succeeded", "failed", "rejected", "timed_out", "cancelled")
#: Milliseconds between two completion polls while one run is in flight.
POLL_ONE_MS = 3
#: Milliseconds between two completion polls while many runs are in flight.
POLL_MANY_MS = 50
#: Longest wait for one run, in milliseconds.
ONE_RUN_DEADLINE_MS = 30_000
#: Longest wait for a throughput batch, in milliseconds.
BATCH_DEADLINE_MS = 120_000
#: Longest wait for the warm-up runs, in milliseconds.
WARM_UP_DEADLINE_MS = 30_000
#: Longest wait for a worker pool to report ready, in milliseconds.
READY_DEADLINE_MS = 30_000
#: Shortest idle gap before a sparse run, in milliseconds.
MIN_GAP_MS = 50
#: Milliseconds of idling before the idle CPU is measured, and of the measurement.
IDLE_SETTLE_MS = 2500
IDLE_WINDOW_MS = 3000
#: Sparse and long-chain runs fit this many seconds per worker timeout (both twins together).
IDLE_BUDGET_S = 25.0


def condition_workflow(workflow_id: str, steps: int) -> str:
    """YAML of a webhook-triggered workflow of ``steps`` always-true condition steps."""
    lines = [
        f"id: {workflow_id}",
        f"name: bench {steps} conditions",
        "triggers:",
        "  - type: webhook",
        "steps:",
    ]
    for number in range(1, steps + 1):
        lines += [f"  - id: c{number}", "    type: condition", '    expr: "true"']
    return "\n".join(lines) + "\n"


def http_workflow(workflow_id: str, steps: int, url: str) -> str:
    """YAML of a webhook-triggered workflow of ``steps`` GETs of ``url`` (each its own message)."""
    lines = [
        f"id: {workflow_id}",
        f"name: bench {steps} http steps",
        "triggers:",
        "  - type: webhook",
        "steps:",
    ]
    for number in range(1, steps + 1):
        lines += [f"  - id: h{number}", "    type: http", "    method: GET", f"    url: {url}"]
    return "\n".join(lines) + "\n"


class NoopHandler(BaseHTTPRequestHandler):
    """Answers every GET with 200 and an empty JSON object."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        # One write: headers and body sent apart would meet Nagle's algorithm and the
        # client's delayed ACK, 40 ms per request on Linux.
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def epoch(value: Any) -> float:
    """Epoch seconds of a naive-UTC datetime as the tables store it."""
    return value.replace(tzinfo=timezone.utc).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 < fraction <= 1) of ``values``: p99 of fewer than 100 is the max."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def idle_gap_ms(timeout_ms: int) -> float:
    """An idle gap long enough for an idle consumer to back off to near its ceiling.

    Dramatiq's backoff doubles from 5 ms (x1-2 jitter) up to the timeout, so
    about 1.5 x the timeout of idling gets it there.
    """
    return max(MIN_GAP_MS, random.uniform(1.5, 2.0) * timeout_ms)


class Child:
    """A child process in its own process group, output to a log file; stopped with its group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Child:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def check(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}; its log ends:\n{self.tail()}"
            )

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        """SIGTERM the group (waking it if paused), SIGKILL it after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
                os.killpg(self.process.pid, signal.SIGCONT)
                self.process.wait(timeout=wait_s)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process and its descendants so far (0 without psutil)."""
        try:
            import psutil
        except ImportError:
            return 0.0
        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            for process in (root, *root.children(recursive=True)):
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
        return total

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclasses.dataclass
class Twin:
    """One platform figure and its bare-Dramatiq twin."""

    label: str
    platform: str
    bare: str
    ratio: str = ""


class Bench:
    """Settings, the in-process API, the two worker pools, and the measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="aisopsflow-bench-"))
        slug = f"bench-{uuid.uuid4().hex[:10]}"
        self.settings: Settings = load_settings(
            {
                "AISOPSFLOW_DATA_DIR": str(self.tmp),
                "AISOPSFLOW_DATABASE_URL": f"sqlite:///{self.tmp / 'bench.db'}",
                "AISOPSFLOW_REDIS_URL": args.redis_url,
                "AISOPSFLOW_REDIS_NAMESPACE": slug,
                "AISOPSFLOW_WORKER_PROCESSES": str(args.processes),
                "AISOPSFLOW_WORKER_THREADS": str(args.threads),
                "AISOPSFLOW_PLUGIN_BASE_PORT": "1",
            }
        )
        self.bare_settings = dataclasses.replace(self.settings, redis_namespace=f"{slug}-bare")
        self.children: list[Child] = []
        self.redis = redis.Redis.from_url(
            args.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        self.bare_dispatcher = Dispatcher(self.bare_settings)
        self.workflow_pks: dict[str, int] = {}
        self.noop = ThreadingHTTPServer(("127.0.0.1", 0), NoopHandler)
        self.noop.daemon_threads = True
        self.noop_url = f"http://127.0.0.1:{self.noop.server_address[1]}/noop"
        threading.Thread(target=self.noop.serve_forever, daemon=True).start()

    # -- set-up and tear-down -------------------------------------------------

    def prepare(self) -> None:
        """Schema, the in-process API and an admin token."""
        from api.app import create_app
        from shared.bootstrap import prepare
        from shared.models import User
        from shared.sessions import open_session
        from shared.tenancy import tenant_by_slug

        prepare(self.settings)
        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        with connection():
            tenant = tenant_by_slug(self.settings.default_tenant_slug)
            admin = User.create(
                tenant=tenant, email="bench@example.test", password_hash="x", role="admin"
            )
            self.token = open_session(self.settings, admin)[0]

    def put_workflow(self, workflow_id: str, steps: int, kind: str = "condition") -> None:
        from shared.models import Workflow

        yaml_text = (
            http_workflow(workflow_id, steps, self.noop_url)
            if kind == "http"
            else condition_workflow(workflow_id, steps)
        )
        response = self.client.put(
            f"/api/workflows/{workflow_id}",
            data=yaml_text,
            content_type="application/yaml",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"PUT workflow {workflow_id}: {response.status_code} {response.json}"
            )
        with connection():
            self.workflow_pks[workflow_id] = Workflow.get(Workflow.workflow_key == workflow_id).id

    def start_workers(self, timeout_ms: int | None) -> None:
        """Start both pools with the given worker timeout (None: Dramatiq's default) and wait until ready."""
        extra = {"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        platform_env = child_environ(self.settings) | extra
        bare_env = child_environ(self.bare_settings) | extra
        for env in (platform_env, bare_env):
            env.pop(WORKER_TIMEOUT_ENV, None)
            if timeout_ms is not None:
                env[WORKER_TIMEOUT_ENV] = str(timeout_ms)
        bare_argv = [
            "bench.bare_actors:setup" if part == "worker.main:setup" else part
            for part in worker_command(self.bare_settings)
        ]
        tag = timeout_ms or "default"
        self.children = [
            Child(
                "platform worker",
                [sys.executable, "-m", "ops.cli", "worker"],
                platform_env,
                self.tmp / f"platform-{tag}.log",
            ).start(),
            Child("bare worker", bare_argv, bare_env, self.tmp / f"bare-{tag}.log").start(),
        ]
        deadline = time.monotonic() + READY_DEADLINE_MS / 1000
        for child in self.children:
            while (
                child.tail(10**7).count("Worker process is ready for action.") < self.args.processes
            ):
                child.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{child.name} not ready after {READY_DEADLINE_MS} ms; its log ends:\n{child.tail()}"
                    )
                time.sleep(0.05)

    def stop_workers(self) -> None:
        for child in self.children:
            child.stop()
        self.children = []

    def close(self) -> None:
        """Stop the children, drop this run's Redis keys and the temp dir (unless --keep)."""
        self.stop_workers()
        self.noop.shutdown()
        self.noop.server_close()
        try:
            for namespace in (self.settings.redis_namespace, self.bare_settings.redis_namespace):
                keys = list(self.redis.scan_iter(match=f"{namespace}*", count=1000))
                if keys:
                    self.redis.delete(*keys)
        except redis.RedisError as error:
            print(f"could not clean Redis keys: {error}", file=sys.stderr)
        if self.args.keep:
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- one platform or bare run ---------------------------------------------

    def hook(self, workflow_id: str) -> tuple[str, float]:
        """POST the webhook; (execution id, epoch seconds just before the request)."""
        started = time.time()
        response = self.client.post(f"/api/hooks/{workflow_id}", json={})
        if response.status_code != 202:
            raise RuntimeError(f"hook {workflow_id}: {response.status_code} {response.json}")
        return response.json["execution_id"], started

    def chain(self, chain_id: str, steps: int, *, record_start: bool = False) -> float:
        """Send the first link of a bare chain; epoch seconds just before sending."""
        started = time.time()
        self.bare_dispatcher.send(HOP, chain_id, steps, record_start, queue_name=CHAIN_QUEUE)
        return started

    def worker_logs(self) -> str:
        """The tail of each running pool's log, for an error message."""
        return "".join(f"\n--- {child.name} log ends:\n{child.tail()}" for child in self.children)

    def wait_executions(
        self, workflow_id: str, count: int, poll_ms: int, deadline_ms: int
    ) -> list[tuple[str, str, float]]:
        """Wait until ``count`` executions of the workflow ended; (id, status, ended epoch) of each."""
        from shared.models import Execution

        pk = self.workflow_pks[workflow_id]
        ended = Execution.select().where(Execution.workflow == pk, Execution.status.in_(ENDED))
        deadline = time.monotonic() + deadline_ms / 1000
        with connection():
            while (done := ended.count()) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{done}/{count} executions of {workflow_id} ended after {deadline_ms} ms"
                        + self.worker_logs()
                    )
                for child in self.children:
                    child.check()
                time.sleep(poll_ms / 1000)
            rows = ended.select(Execution.id, Execution.status, Execution.ended_at)
            return [(row.id, row.status, epoch(row.ended_at)) for row in rows]

    def wait_chains(self, count: int, poll_ms: int, deadline_ms: int) -> dict[str, float]:
        """Wait until ``count`` bare chains ended; chain id -> ended epoch."""
        key = done_key(self.bare_settings.redis_namespace)
        deadline = time.monotonic() + deadline_ms / 1000
        while self.redis.hlen(key) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.redis.hlen(key)}/{count} bare chains ended after {deadline_ms} ms"
                    + self.worker_logs()
                )
            for child in self.children:
                child.check()
            time.sleep(poll_ms / 1000)
        return {name.decode(): float(value) for name, value in self.redis.hgetall(key).items()}

    def fresh_workflow(self, steps: int, kind: str = "condition") -> str:
        workflow_id = f"b{steps}-{kind}-{uuid.uuid4().hex[:8]}"
        self.put_workflow(workflow_id, steps, kind)
        return workflow_id

    def platform_one(self, workflow_id: str, seen: int) -> tuple[float, float, float, float]:
        """One execution, in milliseconds: (webhook to succeeded, webhook answer, to first claim, steps).

        ``seen``: executions of the workflow that already ended.
        """
        from shared.models import Execution

        execution_id, started = self.hook(workflow_id)
        answered = time.time()
        self.wait_executions(workflow_id, seen + 1, POLL_ONE_MS, ONE_RUN_DEADLINE_MS)
        with connection():
            row = Execution.get_by_id(execution_id)
        if row.status != "succeeded":
            raise RuntimeError(f"execution {execution_id} ended {row.status}")
        claimed, ended = epoch(row.started_at), epoch(row.ended_at)
        return tuple(
            1000 * span
            for span in (ended - started, answered - started, claimed - answered, ended - claimed)
        )

    def bare_one(self, steps: int, seen: int) -> float:
        """One bare chain start to end, in milliseconds (``seen``: chains already ended since the reset)."""
        chain_id = uuid.uuid4().hex
        started = self.chain(chain_id, steps)
        return (
            self.wait_chains(seen + 1, POLL_ONE_MS, ONE_RUN_DEADLINE_MS)[chain_id] - started
        ) * 1000

    def reset_chains(self) -> None:
        namespace = self.bare_settings.redis_namespace
        self.redis.delete(done_key(namespace), started_key(namespace))

    # -- the measurements -------------------------------------------------------

    def warm_up(self) -> None:
        """Run a few of everything so imports, caches and connections are warm in every process."""
        count = 2 * self.args.processes * self.args.threads
        for steps, kind in (
            (SHORT_STEPS, "condition"),
            (LONG_STEPS, "condition"),
            (LONG_STEPS, "http"),
        ):
            workflow_id = self.fresh_workflow(steps, kind)
            for _ in range(count):
                self.hook(workflow_id)
            self.wait_executions(workflow_id, count, POLL_MANY_MS, WARM_UP_DEADLINE_MS)
            self.reset_chains()
            for _ in range(count):
                self.chain(uuid.uuid4().hex, steps)
            self.wait_chains(count, POLL_MANY_MS, WARM_UP_DEADLINE_MS)

    def throughput(self) -> list[Twin]:
        """N 3-step executions vs N 3-actor chains: queued then drained, and sent while running."""
        n = self.args.n
        platform_pool, bare_pool = self.children

        def platform_send() -> Callable[[], tuple[float, list[float]]]:
            from shared.models import Execution

            workflow_id = self.fresh_workflow(SHORT_STEPS)
            for _ in range(n):
                self.hook(workflow_id)

            def wait() -> tuple[float, list[float]]:
                rows = self.wait_executions(workflow_id, n, POLL_MANY_MS, BATCH_DEADLINE_MS)
                failures = [status for _, status, _ in rows if status != "succeeded"]
                if failures:
                    raise RuntimeError(
                        f"{len(failures)} of {n} executions did not succeed: {Counter(failures)}"
                    )
                pk = self.workflow_pks[workflow_id]
                with connection():
                    first = (
                        Execution.select(Execution.started_at)
                        .where(Execution.workflow == pk)
                        .order_by(Execution.started_at)
                        .first()
                    )
                return epoch(first.started_at), [ended for _, _, ended in rows]

            return wait

        def bare_send() -> Callable[[], tuple[float, list[float]]]:
            self.reset_chains()
            for _ in range(n):
                self.chain(uuid.uuid4().hex, SHORT_STEPS, record_start=True)

            def wait() -> tuple[float, list[float]]:
                ends = self.wait_chains(n, POLL_MANY_MS, BATCH_DEADLINE_MS)
                starts = self.redis.hvals(started_key(self.bare_settings.redis_namespace))
                return min(float(value) for value in starts), list(ends.values())

            return wait

        drained, drain_cores, live, live_cores, posted = [], [], [], [], []
        for pool, send in ((platform_pool, platform_send), (bare_pool, bare_send)):
            # Queued first, then drained: what the worker pool alone sustains, from the
            # first step's start (so waking up from the pause does not count).
            pool.signal(signal.SIGSTOP)
            wait = send()
            cpu = pool.cpu_seconds()
            pool.signal(signal.SIGCONT)
            first, ends = wait()
            wall = max(ends) - first
            drained.append(n / wall)
            drain_cores.append((pool.cpu_seconds() - cpu) / wall)
            # Sent while the pool runs: webhooks (or messages) and steps compete.
            cpu = (pool.cpu_seconds(), time.process_time())
            started = time.time()
            wait = send()
            posted.append(n / (time.time() - started))
            wall = max(wait()[1]) - started
            live.append(n / wall)
            live_cores.append(
                ((pool.cpu_seconds() - cpu[0]) / wall, (time.process_time() - cpu[1]) / wall)
            )
        return [
            Twin(
                f"throughput, queued then drained, {SHORT_STEPS}-step executions/s (n={n})",
                f"{drained[0]:.1f}",
                f"{drained[1]:.1f}",
                f"{drained[0] / drained[1]:.2f}",
            ),
            Twin(
                "  CPU cores busy (worker pool)", f"{drain_cores[0]:.2f}", f"{drain_cores[1]:.2f}"
            ),
            Twin(
                "throughput, sent while running, executions/s",
                f"{live[0]:.1f}",
                f"{live[1]:.1f}",
                f"{live[0] / live[1]:.2f}",
            ),
            Twin("  webhooks (messages) sent/s meanwhile", f"{posted[0]:.0f}", f"{posted[1]:.0f}"),
            Twin(
                "  CPU cores busy (worker pool + API/driver)",
                *(f"{pool:.2f} + {driver:.2f}" for pool, driver in live_cores),
            ),
        ]

    def idle_pairs(
        self, steps: int, runs: int, timeout_ms: int, kind: str = "condition"
    ) -> tuple[list[tuple[float, ...]], list[float]]:
        """``runs`` platform and bare runs, alternating, each after an idle gap (see platform_one)."""
        workflow_id = self.fresh_workflow(steps, kind)
        self.reset_chains()
        platform: list[tuple[float, ...]] = []
        bare: list[float] = []
        for number in range(runs):
            time.sleep(idle_gap_ms(timeout_ms) / 1000)
            platform.append(self.platform_one(workflow_id, number))
            time.sleep(idle_gap_ms(timeout_ms) / 1000)
            bare.append(self.bare_one(steps, number))
        return platform, bare

    def runs_within_budget(self, wanted: int, timeout_ms: int, run_ms: float) -> int:
        """How many idle pairs fit IDLE_BUDGET_S: at most ``wanted``, at least 3 (or ``wanted``)."""
        pair_s = 2 * (1.75 * max(timeout_ms, MIN_GAP_MS) + run_ms) / 1000
        return max(min(3, wanted), min(wanted, int(IDLE_BUDGET_S / pair_s)))

    def idle_cpu(self) -> Twin:
        """What polling an empty queue costs each pool, in % of one core."""
        time.sleep(IDLE_SETTLE_MS / 1000)  # let the consumers back off to their ceiling
        before = [pool.cpu_seconds() for pool in self.children]
        time.sleep(IDLE_WINDOW_MS / 1000)
        used = [
            pool.cpu_seconds() - start for pool, start in zip(self.children, before, strict=True)
        ]
        return Twin(
            "idle worker pool CPU, % of one core",
            *(f"{100 * seconds / (IDLE_WINDOW_MS / 1000):.1f}" for seconds in used),
        )

    def long_chain(self, timeout_ms: int) -> list[Twin]:
        runs = self.runs_within_budget(self.args.long_runs, timeout_ms, 1000)
        twins: list[Twin] = []
        for kind, what in (
            ("http", "http steps, a message each"),
            ("condition", "conditions, inline"),
        ):
            platform, bare = self.idle_pairs(LONG_STEPS, runs, timeout_ms, kind)
            totals = [run[0] for run in platform]
            twins += [
                Twin(
                    f"{LONG_STEPS}-step ({what}) webhook->succeeded, min / median ms (n={runs})",
                    f"{min(totals):.0f} / {statistics.median(totals):.0f}",
                    f"{min(bare):.0f} / {statistics.median(bare):.0f}",
                    f"{statistics.median(totals) / statistics.median(bare):.1f}x",
                ),
                split_twin(platform, 0.5),
            ]
        return twins

    def sparse(self, timeout_ms: int) -> list[Twin]:
        steps = self.args.sparse_steps
        runs = self.runs_within_budget(self.args.sparse_runs, timeout_ms, 30)
        platform, bare = self.idle_pairs(steps, runs, timeout_ms)
        totals = [run[0] for run in platform]
        what = (
            "1 condition step vs 1 actor"
            if steps == 1
            else f"{steps} condition steps vs {steps}-actor chain"
        )
        return [
            Twin(
                f"sparse ({what}), p50 / p99 ms (n={runs})",
                f"{percentile(totals, 0.5):.0f} / {percentile(totals, 0.99):.0f}",
                f"{percentile(bare, 0.5):.0f} / {percentile(bare, 0.99):.0f}",
                f"{percentile(totals, 0.5) / percentile(bare, 0.5):.1f}x",
            ),
            split_twin(platform, 0.5),
            split_twin(platform, 0.99),
        ]

    def measure(self, timeout_ms: int | None) -> list[Twin]:
        """Every figure with both pools started under one worker timeout."""
        effective = timeout_ms or DRAMATIQ_DEFAULT_TIMEOUT_MS
        self.start_workers(timeout_ms)
        try:
            self.warm_up()
            idle = self.idle_cpu()
            figures = [*self.throughput(), *self.long_chain(effective), *self.sparse(effective)]
            return [*figures, idle]
        finally:
            self.stop_workers()

    # -- the per-step profile ---------------------------------------------------

    def profile(self, executions: int, show_functions: bool) -> list[str]:
        """Run executions in this process, one step at a time, counting SQL and time per step."""
        from worker.step_runner import Runtime, run_step

        capture = CaptureDispatcher()
        runtime = dataclasses.replace(Runtime.build(self.settings), dispatcher=capture)
        real_dispatcher = self.app.extensions["aisopsflow.dispatcher"]
        self.app.extensions["aisopsflow.dispatcher"] = capture
        lines: list[str] = []
        try:
            for steps in (SHORT_STEPS, LONG_STEPS):
                workflow_id = self.fresh_workflow(steps)
                self.hook(workflow_id)  # parse and cache the spec first
                self.drain(runtime, capture, run_step)
                count = executions if steps == SHORT_STEPS else max(2, executions // 6)
                hook_ms, step_ms = [], Counter()
                with SqlCounter() as sql:
                    for _ in range(count):
                        began = time.thread_time()
                        self.hook(workflow_id)
                        hook_ms.append((time.thread_time() - began) * 1000)
                    hook_sql, hook_tx = sql.snapshot()
                    for index, elapsed in self.drain(runtime, capture, run_step):
                        step_ms[index] += elapsed / count
                    step_sql, step_tx = sql.snapshot()
                lines.append(
                    f"{steps}-step workflow: webhook {statistics.median(hook_ms):.1f} CPU ms, "
                    f"{_per(hook_sql, count)} SQL, {_tx(hook_tx, count)}"
                )
                lines.append(
                    f"  per step {sum(step_ms.values()) / steps:.1f} CPU ms, "
                    f"{_per(step_sql, count * steps)} SQL, {_tx(step_tx, count * steps)}"
                )
                if steps == LONG_STEPS:
                    lines.append(
                        f"  CPU ms by position: step 1 {step_ms[0]:.1f}, step 20 {step_ms[19]:.1f}, "
                        f"step 40 {step_ms[39]:.1f}"
                    )
            if show_functions:
                workflow_id = self.fresh_workflow(SHORT_STEPS)
                profiler = cProfile.Profile()
                for _ in range(executions):
                    self.hook(workflow_id)
                self.drain(runtime, capture, run_step, profiler)
                lines.append(
                    f"where {SHORT_STEPS}-step steps spend their time (cProfile; cumulative, project code):"
                )
                lines += ["  " + line for line in top_functions(profiler, 14, project_only=True)]
                lines.append("  own time, any code:")
                lines += ["  " + line for line in top_functions(profiler, 10, own_time=True)]
        finally:
            self.app.extensions["aisopsflow.dispatcher"] = real_dispatcher
        return lines

    def drain(
        self,
        runtime: Any,
        capture: CaptureDispatcher,
        run_step: Callable,
        profiler: cProfile.Profile | None = None,
    ) -> list[tuple[int, float]]:
        """Run captured step messages until none is left; (step index, ms) of each."""
        from shared.models import StepRun

        results = []
        while capture.sent:
            step_run_id = capture.sent.pop(0)
            with connection(), SqlCounter.paused():
                index = StepRun.get_by_id(step_run_id).step_index
            began = time.thread_time()
            if profiler:
                profiler.enable()
            run_step(runtime, step_run_id)
            if profiler:
                profiler.disable()
            results.append((index, (time.thread_time() - began) * 1000))
        return results


class CaptureDispatcher:
    """A Dispatcher stand-in that keeps the step run ids it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, actor_name: str, *args: Any, **options: Any) -> None:
        self.sent.append(args[0])


class SqlCounter(logging.Handler):
    """Counts the statements peewee logs, by verb, and the CPU time spent inside write transactions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.verbs: Counter = Counter()
        self.tx_ms: list[float] = []

    @staticmethod
    @contextmanager
    def paused() -> Iterator[None]:
        """Statements run inside are not counted (the benchmark's own look-ups)."""
        logger = logging.getLogger("peewee")
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.setLevel(level)

    def emit(self, record: logging.LogRecord) -> None:
        sql = record.msg[0] if isinstance(record.msg, tuple) else str(record.msg)
        self.verbs[sql.split(None, 1)[0].upper()] += 1

    def reset(self) -> None:
        self.verbs.clear()
        self.tx_ms.clear()

    def snapshot(self) -> tuple[Counter, list[float]]:
        verbs, tx_ms = Counter(self.verbs), list(self.tx_ms)
        self.reset()
        return verbs, tx_ms

    def __enter__(self) -> SqlCounter:
        logger = logging.getLogger("peewee")
        self.saved_level = logger.level
        logger.addHandler(self)
        logger.setLevel(logging.DEBUG)
        db = database.obj
        begin, commit = db.begin, db.commit
        opened: list[float] = []

        def timed_begin(*args: Any, **kwargs: Any) -> Any:
            opened.append(time.thread_time())
            return begin(*args, **kwargs)

        def timed_commit() -> Any:
            result = commit()
            if opened:
                self.tx_ms.append((time.thread_time() - opened.pop()) * 1000)
            return result

        db.begin, db.commit = timed_begin, timed_commit
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("peewee")
        logger.removeHandler(self)
        logger.setLevel(self.saved_level)
        db = database.obj
        del db.begin, db.commit


def _per(verbs: Counter, count: int) -> str:
    total = sum(verbs.values()) / count
    parts = ", ".join(
        f"{verb.lower()} {number / count:.1f}" for verb, number in verbs.most_common()
    )
    return f"{total:.1f} ({parts})"


def _tx(tx_ms: list[float], count: int) -> str:
    if not tx_ms:
        return "0 write tx"
    return f"{len(tx_ms) / count:.1f} write tx holding the lock {sum(tx_ms) / count:.1f} CPU ms"


def top_functions(
    profiler: cProfile.Profile, limit: int, *, project_only: bool = False, own_time: bool = False
) -> list[str]:
    """The ``limit`` functions with the most cumulative (or own) time, as ``ms  %  calls  where``."""
    stats = pstats.Stats(profiler)
    rows = []
    total = 0.0
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if name == "run_step" and filename.endswith("step_runner.py"):
            total = cumulative
        short = filename.split("site-packages" + os.sep)[-1].replace(str(REPO) + os.sep, "")
        if project_only and not short.startswith(("shared", "worker", "api")):
            continue
        rows.append((own if own_time else cumulative, calls, f"{short}:{line} {name}"))
    rows.sort(reverse=True)
    total = total or 1.0
    return [
        f"{value * 1000:8.1f} ms {100 * value / total:5.1f}% {calls:6d}x  {where}"
        for value, calls, where in rows[:limit]
    ]


def split_twin(runs: list[tuple[float, ...]], fraction: float) -> Twin:
    """Where a platform run's time went, each part at the ``fraction`` percentile on its own."""
    parts = [percentile([run[index] for run in runs], fraction) for index in (1, 2, 3)]
    return Twin(
        f"  p{fraction * 100:.0f} of: webhook answer / to 1st claim / claim->end",
        " / ".join(f"{part:.0f}" for part in parts),
        "",
    )


def print_table(columns: list[tuple[str, list[Twin]]]) -> None:
    """One block of rows per worker timeout: label, platform, bare, platform/bare."""
    if not columns:
        return
    width = max(len(twin.label) for _, twins in columns for twin in twins)
    print(f"\n{'':{width}}  {'platform':>13}  {'bare':>13}  {'plat/bare':>9}")
    for title, twins in columns:
        print(f"-- {title}")
        for twin in twins:
            print(f"{twin.label:{width}}  {twin.platform:>13}  {twin.bare:>13}  {twin.ratio:>9}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        default=200,
        help="executions and chains in the throughput run (default 200)",
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="worker processes of each pool (default 2)"
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per worker process (default 4)"
    )
    parser.add_argument(
        "--worker-timeouts",
        default=f"{DRAMATIQ_DEFAULT_TIMEOUT_MS},{SUGGESTED_TIMEOUT_MS}",
        help=f"comma-separated {WORKER_TIMEOUT_ENV} values in ms to measure under; 0 = unset "
        f"(default {DRAMATIQ_DEFAULT_TIMEOUT_MS},{SUGGESTED_TIMEOUT_MS})",
    )
    parser.add_argument(
        "--long-runs",
        type=int,
        default=5,
        help=f"{LONG_STEPS}-step runs per timeout, fewer if the budget is short",
    )
    parser.add_argument(
        "--sparse-runs",
        type=int,
        default=100,
        help="sparse runs per timeout, fewer if the idle gaps would not fit the budget",
    )
    parser.add_argument(
        "--sparse-steps",
        type=int,
        default=1,
        choices=(1, SHORT_STEPS),
        help="steps of the sparse workflow and chain (default 1)",
    )
    parser.add_argument(
        "--profile-executions",
        type=int,
        default=30,
        help="executions run in-process for the per-step cost (0: skip)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print the functions steps spend their time in"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="Redis for both pools (default redis://127.0.0.1:6379/14)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir with the database and worker logs"
    )
    return parser.parse_args(argv)


def raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def bench_session(args: argparse.Namespace) -> Iterator[Bench]:
    """A prepared Bench whose children and files are cleaned up however the run ends."""
    bench = Bench(args)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    # Ctrl-C must reach the clean-up even when started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        bench.prepare()
        yield bench
    finally:
        bench.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timeouts = [int(value) or None for value in args.worker_timeouts.split(",") if value.strip()]
    script = os.path.relpath(__file__, REPO)
    print("command: python", " ".join([script, *(argv if argv is not None else sys.argv[1:])]))
    print(
        f"workers: {args.processes} processes x {args.threads} threads per pool (platform and bare alike); "
        f"Redis {args.redis_url}; SQLite; API in-process (Flask test client); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    began = time.monotonic()
    with bench_session(args) as bench:
        columns = []
        if args.profile_executions:
            print(
                "\nper-step cost of the platform (in-process, one thread, no broker; CPU time, so other load on the machine does not count):"
            )
            for line in bench.profile(args.profile_executions, args.profile):
                print(" ", line)
        for timeout_ms in timeouts:
            title = (
                f"{WORKER_TIMEOUT_ENV}={timeout_ms} ms"
                if timeout_ms
                else f"{WORKER_TIMEOUT_ENV} unset (Dramatiq default {DRAMATIQ_DEFAULT_TIMEOUT_MS} ms)"
            )
            print(f"measuring with {title} ...", flush=True)
            columns.append((title, bench.measure(timeout_ms)))
        print_table(columns)
    print(
        f"\ntargets: throughput plat/bare >= 0.5; {LONG_STEPS}-step <= 1000 ms; sparse p50 <= 50 ms, p99 <= 150 ms"
    )
    print(
        f"total {time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.1f} at the end"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(
            "interrupted: worker pools stopped, temp files and Redis keys removed", file=sys.stderr
        )
        sys.exit(130)
