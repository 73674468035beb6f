"""Two saas tenants with a user of every role, logged in, on the real API."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.db import connection
from shared.models import ROLES, User
from shared.passwords import hash_password
from shared.sessions import open_session
from shared.tenancy import create_tenant

PASSWORD = "correct-horse-battery"


@functools.cache
def password_hash() -> str:
    """argon2id hash of PASSWORD, computed once per test session."""
    return hash_password(PASSWORD)


@dataclass
class World:
    """The tenants, users and tokens a test acts with."""

    client: Any
    tenants: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        """Authorization header for ``who`` (e.g. 'acme-admin')."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request as ``who``."""
        headers = {**self.headers(who), **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)


def login(client: Any, email: str, password: str = PASSWORD) -> Any:
    """POST /api/login."""
    return client.post("/api/login", json={"email": email, "password": password})


@pytest.fixture
def saas_settings(make_settings: Any, tmp_path: Path) -> Any:
    return make_settings(
        mode="saas",
        database_url=f"sqlite:///{tmp_path / 'saas.db'}",
        # Tests run their providers and http targets on loopback; saas refuses internal
        # addresses otherwise (tests/worker/test_outbound_policy.py shows the refusals).
        kakao_provider_networks="10.0.0.0/8",
        outbound_allowed_networks="127.0.0.0/8",
    )


@pytest.fixture
def saas_app(saas_settings: Any) -> Any:
    from api.app import create_app
    from shared.bootstrap import prepare

    prepare(saas_settings)
    application = create_app(saas_settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def world(saas_app: Any, saas_settings: Any) -> World:
    """acme has one user per role; globex has an admin."""
    client = saas_app.test_client()
    result = World(client=client)
    people = [("acme", role) for role in ROLES] + [("globex", "admin")]
    with connection():
        for slug in ("acme", "globex"):
            result.tenants[slug] = create_tenant(saas_settings, name=slug.title(), slug=slug).id
        for slug, role in people:
            # The real hash of PASSWORD, made once: argon2 costs ~0.2 s a call by design.
            user = User.create(
                tenant=result.tenants[slug],
                email=f"{role}@{slug}.test",
                password_hash=password_hash(),
                role=role,
            )
            result.users[f"{slug}-{role}"] = user.id
            result.tokens[f"{slug}-{role}"] = open_session(saas_settings, user)[0]
    return result
