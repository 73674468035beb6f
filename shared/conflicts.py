"""Which database errors mean "a concurrent transaction won: run yours again"."""

from __future__ import annotations

#: PostgreSQL SQLSTATEs: deadlock_detected, serialization_failure, lock_not_available.
POSTGRES_CONFLICTS = frozenset({"40P01", "40001", "55P03"})
#: MySQL/MariaDB error numbers: deadlock found, lock wait timeout exceeded.
MYSQL_CONFLICTS = frozenset({1213, 1205})
#: Top-level modules of the MySQL drivers, whose errors carry the error number first.
_MYSQL_DRIVERS = frozenset({"pymysql", "MySQLdb", "mysql", "mariadb"})
#: How deep to follow an error's cause and context (peewee wraps the driver's error,
#: and a failed ROLLBACK TO SAVEPOINT can hide the deadlock that caused it).
_CHAIN_DEPTH = 6


def _code(error: BaseException) -> str | int | None:
    sqlstate = getattr(error, "pgcode", None) or getattr(error, "sqlstate", None)
    if sqlstate:
        return sqlstate
    args = getattr(error, "args", ())
    if type(error).__module__.split(".")[0] in _MYSQL_DRIVERS and args:
        return args[0] if isinstance(args[0], int) else None
    return None


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending = [error]
    while pending and len(seen) < _CHAIN_DEPTH:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        # peewee raises its own class with the driver's error as the first argument.
        wrapped = current.args[0] if current.args else None
        if isinstance(wrapped, BaseException):
            pending.append(wrapped)
        pending += [current.__cause__, current.__context__]
    return seen


def is_conflict(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) is a deadlock, serialization failure or lock timeout.

    Such a transaction was rolled back (on MySQL a deadlock rolls back all of it);
    running it again from the start is the cure.
    """
    for link in _chain(error):
        code = _code(link)
        if code in POSTGRES_CONFLICTS or code in MYSQL_CONFLICTS:
            return True
    return False
