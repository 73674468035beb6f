"""Step limit per workflow: a clear 422 naming it, quickly, however many steps are sent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from shared.bootstrap import prepare
from shared.db import connection
from shared.models import User
from shared.sessions import open_session
from shared.tenancy import tenant_by_slug


def workflow(steps: int) -> str:
    """A valid workflow with ``steps`` condition steps."""
    items = "".join(
        f"  - {{id: s{index}, type: condition, expr: 'true'}}\n" for index in range(steps)
    )
    return f"id: big\nname: Big\ntriggers:\n  - type: webhook\nsteps:\n{items}"


@pytest.fixture
def put(make_settings: Any, tmp_path: Path) -> Any:
    """PUT /api/workflows/big as an admin, on an API with AISOPSFLOW_MAX_STEPS_PER_WORKFLOW unset."""

    def build(**overrides: str) -> Any:
        settings = make_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", **overrides)
        prepare(settings)
        client = create_app(settings).test_client()
        with connection():
            admin = User.create(
                tenant=tenant_by_slug("default"),
                email="admin@example.test",
                password_hash="x",
                role="admin",
            )
            token = open_session(settings, admin)[0]

        def send(text: str) -> Any:
            return client.put(
                "/api/workflows/big",
                data=text,
                content_type="application/yaml",
                headers={"Authorization": f"Bearer {token}"},
            )

        return send

    return build


def assert_refused_naming_the_limit(response: Any, limit: int) -> None:
    assert response.status_code == 422, response.json
    body = response.json
    assert body["code"] == 422 and body["status"]
    assert f"more than {limit} steps" in body["message"]
    assert "AISOPSFLOW_MAX_STEPS_PER_WORKFLOW" in body["message"]
    [problem] = body["errors"]["yaml"]
    assert problem["path"] == "steps" and problem["line"] is not None


def test_501_steps_are_refused_and_500_accepted_by_default(put):
    send = put()

    assert_refused_naming_the_limit(send(workflow(501)), 500)
    assert send(workflow(500)).status_code == 200


def test_the_limit_is_a_setting(put):
    send = put(max_steps_per_workflow="3")

    assert_refused_naming_the_limit(send(workflow(4)), 3)
    assert send(workflow(3)).status_code == 200


def test_a_20000_step_upload_is_refused_quickly(put):
    send = put()
    text = workflow(20_000)
    assert len(text.encode()) < 1024 * 1024  # under the body limit: it reaches the parser

    started = time.monotonic()
    response = send(text)
    elapsed = time.monotonic() - started

    assert_refused_naming_the_limit(response, 500)
    assert elapsed < 3, f"took {elapsed:.1f} s"
