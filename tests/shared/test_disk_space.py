"""A full disk is recognised behind each driver's own error, as peewee wraps it."""

from __future__ import annotations

import errno
import sqlite3

import peewee
import pymysql
import pytest

from shared.disk_space import DiskFullMemory, is_disk_full


def _wrapped(original: Exception) -> Exception:
    """``original`` as peewee re-raises a driver error (the driver's error is the context)."""
    try:
        try:
            raise original
        except Exception as error:  # noqa: BLE001 - what peewee's wrapper catches
            raise peewee.OperationalError(error, *error.args) from None
    except peewee.OperationalError as wrapped:
        wrapped.__context__ = original
        return wrapped


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (_wrapped(sqlite3.OperationalError("database or disk is full")), True),
        (_wrapped(sqlite3.OperationalError("database is locked")), False),
        (_wrapped(pymysql.err.OperationalError(1114, "The table 'audit_log' is full")), True),
        (_wrapped(pymysql.err.OperationalError(1213, "Deadlock found")), False),
        (
            _wrapped(
                RuntimeError('could not extend file "base/16384/2619": No space left on device')
            ),
            True,
        ),
        (ValueError("boom"), False),
    ],
    ids=[
        "enospc",
        "eacces",
        "sqlite-full",
        "sqlite-locked",
        "mysql-table-full",
        "mysql-deadlock",
        "postgres-extend",
        "other",
    ],
)
def test_disk_full_is_recognised(error, full):
    assert is_disk_full(error) is full


def test_the_memory_forgets_after_its_window():
    memory = DiskFullMemory()
    assert not memory.seen_within()

    memory.record()

    assert memory.seen_within() and not memory.seen_within(window_ms=-1)
