"""SQLite is opened with WAL, a busy timeout and foreign keys on."""

from __future__ import annotations

from shared.db import SQLITE_BUSY_TIMEOUT_MS, bind


def test_sqlite_pragmas(tmp_path):
    db = bind(f"sqlite:///{tmp_path / 'x.db'}")
    db.connect()

    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == SQLITE_BUSY_TIMEOUT_MS
    db.close()
