"""Fixtures (loaded by tests/conftest.py): an engine stack for integration tests: real Redis, real Dramatiq worker and scheduler processes.

Each test gets its own SQLite file and its own Redis namespace, so queues never mix.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.db import connection
from shared.models import User
from shared.sessions import open_session
from tests.support.loopback import Loopback
from tests.support.processes import Process

ENDED = ("succeeded", "failed", "rejected", "timed_out", "cancelled")


@dataclass
class Engine:
    """The API client, its admin token, and the worker/scheduler processes."""

    client: Any
    settings: Any
    token: str
    tenant_id: str
    worker: Process
    scheduler: Process
    tmp_path: Path

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def put_workflow(self, workflow_id: str, yaml_text: str) -> Any:
        response = self.client.put(
            f"/api/workflows/{workflow_id}",
            data=yaml_text,
            content_type="application/yaml",
            headers=self.headers(),
        )
        assert response.status_code == 200, response.json
        return response.json

    def hook(self, workflow_id: str, body: Any = None, *, path: str = "", **kwargs: Any) -> Any:
        url = f"/api/hooks/{workflow_id}" + (f"/{path}" if path else "")
        return self.client.post(url, json=body if body is not None else {}, **kwargs)

    def execution(self, execution_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/executions/{execution_id}", headers=self.headers())
        assert response.status_code == 200, response.json
        return response.json

    def wait_for(
        self, execution_id: str, statuses: tuple[str, ...] = ENDED, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll until the execution reaches one of ``statuses``; fail with the worker's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.execution(execution_id)
            if view["status"] in statuses:
                return view
            time.sleep(0.05)
        raise AssertionError(
            f"execution {execution_id} still {view['status']} after {timeout} s\n{view}\n--- worker ---\n{self.worker.output()[-4000:]}"
        )

    def step(self, view: dict[str, Any], step_id: str) -> dict[str, Any]:
        return next(step for step in view["steps"] if step["step_id"] == step_id)

    def user_token(self, role: str) -> str:
        from shared.passwords import hash_password

        with connection():
            user = User.create(
                tenant=self.tenant_id,
                email=f"{role}-{uuid.uuid4().hex[:6]}@example.test",
                password_hash=hash_password("long-enough-1"),
                role=role,
            )
            return open_session(self.settings, user)[0]


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    """A scriptable HTTP server on 127.0.0.1."""
    with Loopback() as server:
        yield server


@pytest.fixture
def engine_overrides() -> dict[str, str]:
    """Extra settings for the `engine` fixture; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def engine(
    make_settings: Callable[..., Any], tmp_path: Path, engine_overrides: dict[str, str]
) -> Iterator[Engine]:
    """API in-process, one Dramatiq worker process and one scheduler process, all on one SQLite file."""
    from api.app import create_app
    from shared.bootstrap import prepare
    from shared.tenancy import tenant_by_slug

    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'engine.db'}",
        redis_namespace=f"t-{uuid.uuid4().hex[:12]}",
        worker_processes="1",
        worker_threads="4",
        plugin_base_port="1",  # nothing listens there: notify to a plugin fails fast
        **engine_overrides,
    )
    prepare(settings)
    app = create_app(settings)
    with connection():
        tenant = tenant_by_slug(settings.default_tenant_slug)
        admin = User.create(
            tenant=tenant, email="admin@example.test", password_hash="x", role="admin"
        )
        token = open_session(settings, admin)[0]
    worker = Process(settings, ["worker"], tmp_path / "worker.log").start()
    scheduler = Process(settings, ["scheduler"], tmp_path / "scheduler.log").start()
    stack = Engine(app.test_client(), settings, token, tenant.id, worker, scheduler, tmp_path)
    yield stack
    # A test may have replaced the worker (a restart after a crash): stop what runs now.
    for process in {id(p): p for p in (worker, scheduler, stack.worker, stack.scheduler)}.values():
        process.stop()
