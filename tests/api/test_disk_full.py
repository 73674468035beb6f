"""A full disk: writes answer 507 saying so, and /healthz stops saying ok.

The data dir and the SQLite file live on a real 4 MiB tmpfs that the test fills,
so the error is SQLite's own SQLITE_FULL from a real ENOSPC, not a stand-in.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db import database
from tests.api.conftest import password_hash
from tests.conftest import IN_CI

SIZE = "4m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted 4 MiB tmpfs; unmounted afterwards."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield mount_point
    if not database.obj.is_closed():
        database.obj.close()
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> None:
    """Write until the filesystem has no block left."""
    descriptor = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * chunk)
            except OSError:
                continue
    finally:
        os.close(descriptor)


@pytest.fixture
def full_disk_client(small_disk: Path, make_settings):
    from api.app import create_app
    from shared.bootstrap import prepare
    from shared.db import connection
    from shared.models import User
    from shared.sessions import open_session
    from shared.tenancy import ensure_default_tenant

    settings = make_settings(data_dir=str(small_disk / "data"), min_free_disk_mb="1")
    prepare(settings)
    app = create_app(settings)
    with connection():
        admin = User.create(
            tenant=ensure_default_tenant(settings).id,
            email="admin@example.test",
            password_hash=password_hash(),
            role="admin",
        )
        token = open_session(settings, admin)[0]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    return client, headers, small_disk


def test_a_write_to_a_full_disk_answers_507_and_health_fails(full_disk_client):
    client, headers, disk = full_disk_client
    # The API's connection is open, with its -wal and -shm files, before the disk fills.
    assert client.get("/api/recipients", headers=headers).status_code == 200
    healthy = client.get("/healthz")
    assert healthy.json["disk"] == "ok", healthy.json

    _fill(disk)
    low = client.get("/healthz")
    responses = [
        client.post("/api/recipients", json={"name": f"person-{i}" + "x" * 150}, headers=headers)
        for i in range(50)
    ]
    after = client.get("/healthz")

    assert low.status_code == 503 and low.json["disk"].startswith("low: 0 MiB free"), low.json
    full = [response for response in responses if response.status_code != 201]
    assert full, "the disk never filled"
    assert {response.status_code for response in full} == {507}
    body = full[0].json
    assert body["code"] == 507 and body["status"] == "Insufficient Storage"
    assert "disk is full" in body["message"] and "sqlite" not in body["message"].lower()
    assert after.status_code == 503 and after.json["status"] == "degraded"
    assert after.json["disk"].startswith("full:"), after.json
