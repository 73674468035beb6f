"""Database connection: one late-bound proxy, opened from a URL by each process's entry point.

SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL and MySQL/MariaDB are
chosen by the URL scheme. Writes go through :func:`write_transaction`, the one
session pattern for changes (it takes SQLite's write lock up front, so a
read-then-write never fails half way with a stale snapshot); a unit of work
that may lose a deadlock to a concurrent one runs as :func:`in_write_transaction`,
which runs it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlparse

import peewee
from playhouse import db_url

from shared.conflicts import is_conflict
from shared.domain.backoff import backoff_ms
from shared.errors import TransactionConflict
from shared.private_files import private_sqlite_file

log = logging.getLogger(__name__)
# Peewee logs every statement with its parameters at DEBUG. Those parameters carry
# plaintext no log line may show (a runner job's signed env holds the secrets it was
# rendered with until the job ends), so its logger never goes below INFO, whatever
# AISOPSFLOW_LOG_LEVEL says.
logging.getLogger("peewee").setLevel(logging.INFO)

P = ParamSpec("P")
T = TypeVar("T")

#: Milliseconds SQLite waits for a competing writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: MySQL 8 and MariaDB error numbers for a violated CHECK constraint.
MYSQL_CHECK_VIOLATIONS = frozenset({3819, 4025})

#: Runs of a transaction the database keeps aborting on conflicts, before TransactionConflict.
TRANSACTION_ATTEMPTS = 6
#: Milliseconds before running a conflicting transaction again; doubles per run, with jitter.
CONFLICT_BACKOFF_MS = 10
#: Longest wait between two runs of a conflicting transaction, in milliseconds.
MAX_CONFLICT_BACKOFF_MS = 320

database = peewee.DatabaseProxy()

_database_tokens = itertools.count(1)


def database_token(db: peewee.Database | None = None) -> int:
    """A number naming the bound (or given) database object, for per-database caches.

    Stored on the object itself: ``id()`` of a dead database object can be reused.
    """
    target = db or database.obj
    token = getattr(target, "_aisopsflow_token", None)
    if token is None:
        token = next(_database_tokens)
        target._aisopsflow_token = token
    return token


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
            private_sqlite_file(Path(path))
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


#: Per thread: the buffers of the outermost write transaction open on it (see transaction_buffer).
_open_transactions = threading.local()


def _begin(db: peewee.Database) -> contextlib.AbstractContextManager:
    if isinstance(db, peewee.SqliteDatabase):
        if db.database == ":memory:":
            return db.atomic("IMMEDIATE")
        return _sqlite_write(db)
    return db.atomic()


@contextlib.contextmanager
def _outermost_transaction(db: peewee.Database) -> Iterator[None]:
    buffers: dict[str, tuple[list[Any], Callable[[list[Any]], None]]] = {}
    _open_transactions.buffers = buffers
    try:
        with _begin(db):
            yield
            for items, flush in buffers.values():
                flush(items)
    except peewee.DatabaseError as error:
        if is_conflict(error):
            # The first line only: PostgreSQL's detail lines name processes and rows.
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise TransactionConflict(
                "the database aborted this change because it conflicted with concurrent ones "
                f"({reason}); nothing was saved, send it again"
            ) from error
        raise
    finally:
        _open_transactions.buffers = None


def write_transaction() -> contextlib.AbstractContextManager:
    """A transaction for a change; nests as a savepoint inside another one.

    The outermost one reports a deadlock or serialization failure as
    TransactionConflict (503): nothing was saved and the change may be sent again.
    """
    db = database.obj
    if db.in_transaction():
        return db.atomic()
    return _outermost_transaction(db)


def transaction_buffer(name: str, flush: Callable[[list[Any]], None]) -> list[Any] | None:
    """A list that lives as long as this thread's outermost write transaction; None outside one.

    ``flush`` receives it (once, whatever it holds) at the end of the transaction
    just before it commits, after the block's own statements; if the block
    raises, the list is dropped. Lets a module take a lock last, at commit time
    (the audit chain's head), so no transaction holds it while waiting for another.
    """
    buffers = getattr(_open_transactions, "buffers", None)
    if buffers is None:
        return None
    if name not in buffers:
        buffers[name] = ([], flush)
    return buffers[name][0]


def in_write_transaction(function: Callable[P, T]) -> Callable[P, T]:
    """Run ``function`` in a write transaction of its own, again from the start when a conflict aborts it.

    A deadlock or serialization failure rolls the whole transaction back (on
    MySQL, all of it); after a short jittered wait it is run again, up to
    TRANSACTION_ATTEMPTS times, then TransactionConflict (503) is raised. Inside
    another transaction it joins it as a savepoint and leaves running again to the
    outermost one. Side effects that must happen once (enqueueing wake-ups) belong
    after it returns, never inside it.
    """

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if database.obj.in_transaction():
            with write_transaction():
                return function(*args, **kwargs)
        for attempt in itertools.count(1):
            try:
                with write_transaction():
                    return function(*args, **kwargs)
            except TransactionConflict as conflict:
                if attempt >= TRANSACTION_ATTEMPTS:
                    raise TransactionConflict(
                        f"{function.__qualname__} conflicted with concurrent changes "
                        f"{attempt} times in a row; nothing was saved, send it again"
                    ) from conflict.__cause__
                delay_ms = backoff_ms(
                    attempt,
                    base_ms=CONFLICT_BACKOFF_MS,
                    max_ms=MAX_CONFLICT_BACKOFF_MS,
                    jitter=True,
                )
                log.info(
                    "%s: %s; running it again in %d ms",
                    function.__qualname__,
                    conflict.__cause__,
                    delay_ms,
                )
                time.sleep(delay_ms / 1000)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    return run


def lock_for_update(query: peewee.Select, *, key_change: bool = False) -> peewee.Select:
    """Lock the selected rows until the transaction ends, where the backend can.

    SQLite's IMMEDIATE transaction already excludes every other writer. On
    PostgreSQL the lock is FOR NO KEY UPDATE, which still lets other transactions
    insert rows referencing the locked ones (a webhook's execution referencing the
    workflow being edited); ``key_change`` (the row will be deleted) takes FOR UPDATE.
    """
    backend = backend_name()
    if backend == "sqlite":
        return query
    if backend == "postgres" and not key_change:
        return query.for_update("FOR NO KEY UPDATE")
    return query.for_update()


def _keeps_connections(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase) and db.database != ":memory:"


def release_connection(*, failed: bool = False) -> None:
    """End a unit of work begun with ``database.connect(reuse_if_open=True)``.

    A SQLite connection stays open for the thread's next unit (see ``connection``);
    server backends close, and so does any connection after a failure.
    """
    db = database.obj
    if not db.is_closed() and (failed or not _keeps_connections(db)) and not db.in_transaction():
        db.close()


@contextlib.contextmanager
def connection(*, keep_open: bool = False) -> Iterator[None]:
    """Hold a connection for the duration of a unit of work (a request, a job).

    ``keep_open`` leaves a SQLite connection open for the thread's next unit of
    work (a worker thread runs thousands): opening one costs its pragmas and
    closing one a WAL check, about 1.5 ms together. Server backends still close,
    so a connection the server dropped is never reused; any error closes too.
    """
    db = database.obj
    opened = db.connect(reuse_if_open=True)
    keep = keep_open and _keeps_connections(db)
    try:
        yield
    except BaseException:
        if not db.is_closed() and not db.in_transaction():
            db.close()
        raise
    else:
        if opened and not keep and not db.is_closed():
            db.close()


class PreparedSelect:
    """A select whose SQL peewee generates once per database, then runs with new values.

    Peewee builds a query's SQL afresh on every run: for a two-table join that
    takes about 0.5 ms of Python, while SQLite answers it in 0.02 ms. On the
    worker's hot path this was a fifth of a step's CPU. ``build`` receives one
    placeholder per parameter and returns the query; ``first`` runs it with real
    values and returns the first row as a model instance (joins included), like
    ``query.first()``.
    """

    def __init__(self, build: Callable[..., peewee.Select], arity: int = 1) -> None:
        self.build = build
        self.arity = arity
        self._compiled: dict[int, tuple[peewee.Select, str, list[Any], list[int]]] = {}
        self._lock = threading.Lock()

    def _compile(self, db: peewee.Database) -> tuple[peewee.Select, str, list[Any], list[int]]:
        key = database_token(db)
        compiled = self._compiled.get(key)
        if compiled is None:
            markers = [_marker(index) for index in range(self.arity)]
            # Placeholders pass through as they are: a field's conversion would change them.
            query = self.build(*(peewee.Value(marker, converter=_as_is) for marker in markers))
            sql, params = query.sql()
            positions = [params.index(marker) for marker in markers]
            compiled = (query, sql, list(params), positions)
            with self._lock:
                self._compiled[key] = compiled
        return compiled

    def _rows(self, values: tuple[Any, ...]) -> Iterator[peewee.Model]:
        db = database.obj
        query, sql, params, positions = self._compile(db)
        bound = list(params)
        for position, value in zip(positions, values, strict=True):
            bound[position] = value
        cursor = db.execute_sql(sql, bound)
        # The query's own cursor wrapper turns rows into model instances exactly as
        # iterating the query would (column conversions, joined models).
        return iter(query._get_cursor_wrapper(cursor))  # noqa: SLF001

    def first(self, *values: Any) -> peewee.Model | None:
        """The first row for ``values`` (one per placeholder, passed to the driver as they are), or None."""
        return next(self._rows(values), None)

    def all(self, *values: Any) -> list[peewee.Model]:
        """Every row for ``values`` (one per placeholder, passed to the driver as they are)."""
        return list(self._rows(values))


#: Generated SQL of hot single-row writes, by (database, model, columns): see insert_row.
_write_statements: dict[tuple[int, type, str, tuple[str, ...]], tuple[str, list[int]]] = {}


def _as_is(value: Any) -> Any:
    return value


def _marker(index: int) -> str:
    return f"\x00aisopsflow-param-{index}\x00"


def _statement(
    kind: str, model: type[peewee.Model], names: tuple[str, ...]
) -> tuple[str, list[int]]:
    """(SQL, parameter position of each name then of the primary key) for an insert or update."""
    db = database.obj
    key = (database_token(db), model, kind, names)
    cached = _write_statements.get(key)
    if cached is None:
        markers = {name: _marker(index) for index, name in enumerate(names)}
        # Placeholders pass through as they are: a field's own conversion would turn
        # one into something else (a BooleanField makes any string True).
        placeholders = {
            name: peewee.Value(marker, converter=_as_is, unpack=False)
            for name, marker in markers.items()
        }
        if kind == "insert":
            query = model.insert(placeholders)
            order = list(names)
        else:
            pk_marker = _marker(len(names))
            query = model.update(placeholders).where(
                model._meta.primary_key == peewee.Value(pk_marker, converter=_as_is)
            )
            order = [*names, "__pk__"]
            markers["__pk__"] = pk_marker
        sql, params = query.sql()
        if len(params) != len(order) or any(markers[name] not in params for name in order):
            # Peewee added a value of its own (a default), or a value is an expression:
            # either would be frozen into the cached SQL.
            raise ValueError(
                f"{model.__name__} {kind}: give every column, as plain values; got {names}"
            )
        cached = (sql, [params.index(markers[name]) for name in order])
        _write_statements[key] = cached
    return cached


def _plain(model: type[peewee.Model], kind: str, values: dict[str, Any]) -> None:
    expressions = [name for name, value in values.items() if isinstance(value, peewee.Node)]
    if expressions:
        raise ValueError(
            f"{model.__name__} {kind}: give every column, as plain values; {expressions} are expressions"
        )


def _run(sql: str, positions: list[int], values: list[Any]) -> peewee.Cursor:
    bound: list[Any] = [None] * len(positions)
    for position, value in zip(positions, values, strict=True):
        bound[position] = value
    return database.obj.execute_sql(sql, bound)


def insert_row(model: type[peewee.Model], row: dict[str, Any]) -> None:
    """``model.insert(row).execute()`` with the SQL generated once per column set.

    ``row`` maps field names to plain values (no expressions); missing fields
    take their defaults, and each value is converted by its field exactly as
    peewee would.
    """
    row = dict(row)
    for field, default in model._meta.defaults.items():
        if field.name not in row:
            row[field.name] = default() if callable(default) else default
    _plain(model, "insert", row)
    names = tuple(row)
    sql, positions = _statement("insert", model, names)
    fields = model._meta.fields
    _run(sql, positions, [fields[name].db_value(row[name]) for name in names])


def update_row(model: type[peewee.Model], row_id: Any, values: dict[str, Any]) -> int:
    """``model.update(values).where(pk == row_id).execute()`` with the SQL generated once; rows changed."""
    _plain(model, "update", values)
    names = tuple(values)
    sql, positions = _statement("update", model, names)
    fields = model._meta.fields
    primary_key = model._meta.primary_key
    converted = [fields[name].db_value(values[name]) for name in names]
    cursor = _run(sql, positions, [*converted, primary_key.db_value(row_id)])
    return cursor.rowcount
