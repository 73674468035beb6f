"""Fixtures of the fault suite: a stack of real processes per test, and the line each scenario prints."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db import connection
from shared.models import User
from shared.sessions import open_session
from tests.support.fault_stack import FaultStack, PrivateRedis, free_port
from tests.support.loopback import Loopback
from tests.support.processes import Process


@pytest.fixture
def fault_stack(
    make_settings: Callable[..., Any], tmp_path: Path, loopback: Loopback
) -> Iterator[Callable[..., FaultStack]]:
    """Start a stack: ``start(database_url=None, plugin=False)``; everything is stopped after the test."""
    from shared.bootstrap import prepare
    from shared.tenancy import tenant_by_slug

    stacks: list[FaultStack] = []
    servers: list[PrivateRedis] = []

    def start(*, database_url: str | None = None, plugin: bool = False) -> FaultStack:
        redis_server = PrivateRedis()
        servers.append(redis_server)
        redis_server.start()
        teams_port = free_port()
        settings = make_settings(
            database_url=database_url or f"sqlite:///{tmp_path / 'faults.db'}",
            redis_url=redis_server.url,
            redis_namespace=f"f-{uuid.uuid4().hex[:12]}",
            api_port=str(free_port()),
            api_workers="2",
            # The Teams plugin is the fourth bundled plugin: it listens on base + 3.
            plugin_base_port=str(teams_port - 3),
            worker_processes="1",
            worker_threads="4",
        )
        prepare(settings)
        with connection():
            tenant = tenant_by_slug(settings.default_tenant_slug)
            admin = User.create(
                tenant=tenant, email="admin@example.test", password_hash="x", role="admin"
            )
            token = open_session(settings, admin)[0]

        def process(*command: str) -> Process:
            return Process(settings, list(command), tmp_path / f"{command[0]}.log").start()

        stack = FaultStack(
            settings=settings,
            tmp_path=tmp_path,
            redis=redis_server,
            counter=loopback,
            token=token,
            api=process("api"),
            worker=process("worker"),
            scheduler=process("scheduler"),
            plugin=process("plugin", "teams") if plugin else None,
        )
        stacks.append(stack)
        stack.wait_api()
        stack.wait_worker()
        stack.wait_scheduler()
        if plugin:
            stack.wait_plugin()
        return stack

    yield start
    for stack in stacks:
        stack.stop()
    for server in servers:
        server.close()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a line past pytest's capture, so the CI log shows every scenario's figures."""

    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n{line}", flush=True)

    return write
