"""The data dir is 0700 and every SQLite file 0600, whatever the umask says."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.bootstrap import prepare
from shared.db import database, write_transaction
from shared.models import Tenant


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The common default umask, under which new files are world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)
    if not database.obj.is_closed():
        database.obj.close()


def _write_something() -> None:
    """A write on an open connection, which leaves SQLite's -wal and -shm files in place."""
    database.obj.connect(reuse_if_open=True)
    with write_transaction():
        Tenant.update(name="renamed").execute()


def test_a_fresh_install_keeps_its_files_private(make_settings, permissive_umask):
    settings = make_settings()  # SQLite inside the data dir

    prepare(settings)
    _write_something()
    database_path = Path(database.obj.database)

    assert database_path.parent == settings.data_dir.resolve()
    assert _mode(settings.data_dir) == 0o700
    assert _mode(database_path) == 0o600
    for suffix in ("-wal", "-shm", ".writer-lock"):
        side = Path(f"{database_path}{suffix}")
        assert side.exists(), side
        assert _mode(side) == 0o600, (suffix, oct(_mode(side)))


def test_files_left_readable_by_an_older_version_are_tightened(make_settings, permissive_umask):
    settings = make_settings()
    settings.data_dir.mkdir(mode=0o755)
    database_path = settings.data_dir / "aisopsflow.db"
    database_path.touch(mode=0o644)

    prepare(settings)

    assert _mode(settings.data_dir) == 0o700
    assert _mode(database_path) == 0o600


def test_a_database_outside_the_data_dir_is_private_too(make_settings, tmp_path, permissive_umask):
    path = tmp_path / "elsewhere" / "core.db"
    settings = make_settings(database_url=f"sqlite:///{path}")

    prepare(settings)
    _write_something()

    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600
    assert _mode(Path(f"{path}-wal")) == 0o600
