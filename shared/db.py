"""Database connection: one late-bound proxy, opened from a URL by each process's entry point.

SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL and MySQL/MariaDB are
chosen by the URL scheme. Writes go through :func:`write_transaction`, the one
session pattern for changes (it takes SQLite's write lock up front, so a
read-then-write never fails half way with a stale snapshot).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse import db_url

#: Milliseconds SQLite waits for a competing writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: MySQL 8 and MariaDB error numbers for a violated CHECK constraint.
MYSQL_CHECK_VIOLATIONS = frozenset({3819, 4025})

database = peewee.DatabaseProxy()


class MySQLDatabase(peewee.MySQLDatabase):
    """MySQL/MariaDB reporting a CHECK violation as IntegrityError, like the other backends."""

    def execute_sql(self, sql, params=None):  # noqa: ANN001, ANN201 - peewee's signature
        try:
            return super().execute_sql(sql, params)
        except peewee.OperationalError as error:
            if error.args and error.args[0] in MYSQL_CHECK_VIOLATIONS:
                raise peewee.IntegrityError(*error.args) from error
            raise


db_url.register_database(MySQLDatabase, "mysql")


def open_database(url: str) -> peewee.Database:
    """Create (not connect) a peewee Database for ``url``."""
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme == "sqlite":
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(
            path or ":memory:",
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                "foreign_keys": 1,
                "synchronous": "normal",
            },
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        )
    if scheme == "mysql":
        # DATETIME(6) keeps microseconds, so a timestamp reads back exactly as written
        # (the audit hash chain depends on it); LONGTEXT holds a 1 MiB workflow.
        return db_url.connect(
            url,
            charset="utf8mb4",
            field_types={"DATETIME": "DATETIME(6)", "TEXT": "LONGTEXT"},
        )
    return db_url.connect(url)


def bind(url: str) -> peewee.Database:
    """Open the database at ``url`` and point the shared proxy at it."""
    db = open_database(url)
    database.initialize(db)
    return db


def backend_name(db: peewee.Database | None = None) -> str:
    """'sqlite', 'postgres' or 'mysql' for the bound (or given) database."""
    target = db or database.obj
    if isinstance(target, peewee.SqliteDatabase):
        return "sqlite"
    if isinstance(target, peewee.PostgresqlDatabase):
        return "postgres"
    return "mysql"


class SqliteWriterQueue:
    """Lets one SQLite writer at a time in, across threads and processes, in arrival order.

    Without it, writers that find the database locked spin in SQLite's busy handler,
    backing off up to the busy timeout: measured under load, tens of milliseconds per
    transaction with multi-second tails. A thread lock plus ``flock`` on a file beside
    the database makes them queue instead.
    """

    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}.writer-lock"
        self.thread_lock = threading.Lock()
        self.descriptor: int | None = None
        self.owner_pid = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Wait for the turn to write, hold it for the block."""
        with self.thread_lock:
            if self.descriptor is None or self.owner_pid != os.getpid():
                # After a fork the inherited descriptor is shared with the parent, and
                # flock would not keep the two apart: open a fresh one per process.
                self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self.owner_pid = os.getpid()
            fcntl.flock(self.descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.descriptor, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sqlite_write(db: peewee.SqliteDatabase) -> Iterator[None]:
    queue = getattr(db, "_aisopsflow_writer_queue", None)
    if queue is None:
        queue = db._aisopsflow_writer_queue = SqliteWriterQueue(db.database)
    with queue.hold(), db.atomic("IMMEDIATE"):
        yield


def write_transaction() -> contextlib.AbstractContextManager:
    """A transaction for a change; nests as a savepoint inside another one."""
    db = database.obj
    if isinstance(db, peewee.SqliteDatabase) and not db.in_transaction():
        if db.database == ":memory:":
            return db.atomic("IMMEDIATE")
        return _sqlite_write(db)
    return db.atomic()


def lock_for_update(query: peewee.Select) -> peewee.Select:
    """Add FOR UPDATE where the backend has it (SQLite's IMMEDIATE lock covers it there)."""
    if backend_name() == "sqlite":
        return query
    return query.for_update()


@contextlib.contextmanager
def connection() -> Iterator[None]:
    """Hold a connection for the duration of a unit of work (a request, a job)."""
    db = database.obj
    opened = db.connect(reuse_if_open=True)
    try:
        yield
    finally:
        if opened and not db.is_closed():
            db.close()
