"""Files only the service's own user may read: the data dir (0700) and the SQLite files (0600)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

#: The data dir and a database file's new parent: owner only.
PRIVATE_DIR_MODE = 0o700
#: The SQLite database; SQLite gives its -wal and -shm files the same mode.
PRIVATE_FILE_MODE = 0o600
#: What SQLite adds to a database's name for its write-ahead log and shared memory.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by the owner only; tighten it if it exists."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)


def private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it, and tighten one made looser.

    SQLite creates a missing file with the process umask (0644 by default: any local
    user could read every secret's ciphertext, token hash and audit row) and gives
    its -wal/-shm files the database file's mode, so setting it here covers them.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(descriptor)
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in SQLITE_SIDE_FILES)):
        _tighten(candidate, PRIVATE_FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    """chmod ``path`` to ``mode`` if others may read it; a path we do not own only warns."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not current & 0o077:
        return
    try:
        os.chmod(path, mode)
    except PermissionError:
        # A directory mounted in, owned by someone else: starting still beats refusing to.
        log.warning(
            "%s is mode %o and cannot be changed to %o by this user; other local users may read it",
            path,
            current,
            mode,
        )
