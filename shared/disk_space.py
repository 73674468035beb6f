"""Recognising a full disk behind any driver's error, and the free space left in the data dir."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

#: How long after a write failed for a full disk ``/healthz`` keeps reporting it, in milliseconds.
DISK_FULL_REMEMBERED_MS = 60_000
#: SQLSTATE of PostgreSQL's disk_full (``could not extend file``).
POSTGRES_DISK_FULL = "53100"
#: MySQL/MariaDB errors for a full table or disk: ER_RECORD_FILE_FULL, ER_DISK_FULL.
MYSQL_DISK_FULL = frozenset({1114, 1021})
#: How the drivers word it, for errors that carry no code.
_MESSAGES = ("database or disk is full", "could not extend file", "no space left on device")


def _is_disk_full_one(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if getattr(error, "pgcode", None) == POSTGRES_DISK_FULL:
        return True
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int) and args[0] in MYSQL_DISK_FULL:
        return True
    text = str(error).lower()
    return any(message in text for message in _MESSAGES)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says the disk or database is full.

    Covers ``OSError`` ENOSPC, SQLite's SQLITE_FULL, PostgreSQL's DiskFull and
    MySQL/MariaDB's full-table errors, however peewee wrapped them.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_disk_full_one(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process can still write on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


class DiskFullMemory:
    """When this process last failed a write for a full disk (thread-safe, monotonic clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms: float | None = None

    def record(self) -> None:
        """Note that a write just failed because the disk is full."""
        with self._lock:
            self._last_ms = time.monotonic() * 1000

    def seen_within(self, window_ms: float = DISK_FULL_REMEMBERED_MS) -> bool:
        """Whether a write failed for a full disk in the last ``window_ms`` milliseconds."""
        with self._lock:
            last = self._last_ms
        return last is not None and time.monotonic() * 1000 - last <= window_ms
