"""Benchmark the cron scheduler: 10,000 triggers across 100 tenants.

Prints how long one tick takes to find the due triggers when nothing is due,
and how fast 1,000 due slots are fired (executions created and enqueued).
A script, not a test: figures, no asserts. Needs a Redis (default
redis://127.0.0.1:6379/14; messages go to a fresh namespace, deleted at the end).

    python bench/scheduler.py [--tenants 100] [--per-tenant 100] [--due 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from scheduler.cron_source import CronSource  # noqa: E402
from scheduler.due import Schedule  # noqa: E402
from scheduler.firing import fire  # noqa: E402
from shared.bootstrap import prepare  # noqa: E402
from shared.db import connection, database  # noqa: E402
from shared.dispatch import Dispatcher  # noqa: E402
from shared.models import Execution, Tenant, Workflow, WorkflowVersion, utcnow  # noqa: E402
from shared.settings import load_settings  # noqa: E402

WORKFLOW = """
id: {key}
name: cron {key}
triggers:
  - type: cron
    expr: "{expr}"
steps:
  - id: only
    type: condition
    expr: "true"
"""


def populate(tenants: int, per_tenant: int, due: int) -> None:
    """Insert the workflows directly (setup, not what is measured)."""
    now = utcnow()
    made = 0
    for number in range(tenants):
        tenant = Tenant.create(name=f"Tenant {number}", slug=f"bench-{number}", mode="saas")
        workflows, versions = [], []
        for index in range(per_tenant):
            # The first `due` triggers fire every minute; the rest once a day at 03:00.
            expr = "* * * * *" if made < due else "0 3 * * *"
            key = f"wf-{index}"
            text = WORKFLOW.format(key=key, expr=expr)
            workflows.append(
                {
                    "tenant": tenant.id,
                    "workflow_key": key,
                    "name": key,
                    "yaml": text,
                    "enabled": True,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            made += 1
        with database.obj.atomic():
            Workflow.insert_many(workflows).execute()
            for row in Workflow.select(Workflow.id, Workflow.yaml).where(
                Workflow.tenant == tenant.id
            ):
                versions.append(
                    {
                        "tenant": tenant.id,
                        "workflow": row.id,
                        "version": 1,
                        "yaml": row.yaml,
                        "created_at": now,
                    }
                )
            WorkflowVersion.insert_many(versions).execute()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--per-tenant", type=int, default=100)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    arguments = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="aof-bench-scheduler-"))
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    environ = {
        "AISOPSFLOW_DATA_DIR": str(directory),
        "AISOPSFLOW_REDIS_URL": arguments.redis_url,
        "AISOPSFLOW_REDIS_NAMESPACE": namespace,
        "AISOPSFLOW_MODE": "saas",
    }
    if arguments.database_url:
        environ["AISOPSFLOW_DATABASE_URL"] = arguments.database_url
    settings = load_settings(environ)
    prepare(settings)
    total = arguments.tenants * arguments.per_tenant
    print(
        f"bench/scheduler.py: {total} cron triggers across {arguments.tenants} tenants, {arguments.due} due per minute"
    )
    print(
        f"database: {settings.resolved_database_url.split('://')[0]}, redis: {arguments.redis_url}"
    )

    with connection():
        started = time.perf_counter()
        populate(arguments.tenants, arguments.per_tenant, arguments.due)
        print(f"setup (direct inserts):              {time.perf_counter() - started:8.2f} s")

        schedule = Schedule()
        source = CronSource(schedule, parse_wait_ms=600_000)  # load everything in this refresh
        # A quiet moment: 30 s into a minute, so the every-minute triggers are not due.
        base = datetime.now(timezone.utc).replace(second=30, microsecond=0)
        started = time.perf_counter()
        source.refresh(base)
        print(
            f"load {len(schedule)} triggers (parse + arm):   {time.perf_counter() - started:8.2f} s"
        )

        quiet = []
        for offset in range(50):
            moment = base + timedelta(milliseconds=offset * 10)
            begin = time.perf_counter()
            source.refresh(moment)
            due = schedule.due(moment)
            quiet.append((time.perf_counter() - begin) * 1000)
            assert not due
        print(
            f"tick with nothing due (refresh check + due): median {statistics.median(quiet):.2f} ms, max {max(quiet):.2f} ms  (target < 50 ms)"
        )

        dispatcher = Dispatcher(settings)
        moment = base + timedelta(seconds=31)  # just past the next minute boundary
        begin = time.perf_counter()
        due = schedule.due(moment)
        found = time.perf_counter() - begin
        begin = time.perf_counter()
        started_count = fire(dispatcher, due, moment, source.specs)
        elapsed = time.perf_counter() - begin
        print(
            f"tick with {len(due)} due: find {found * 1000:.1f} ms, fire {elapsed:.2f} s -> {started_count / elapsed:,.0f} fires/s  (target: 1,000 in < 1 s)"
        )
        print(f"executions created: {Execution.select().count()}")

    client = redis.Redis.from_url(arguments.redis_url)
    for key in client.scan_iter(f"{namespace}:*"):
        client.delete(key)


if __name__ == "__main__":
    main()
