"""What each process is started with: the environment children inherit and the commands."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ops.processes import (
    PLUGIN_NAMES,
    api_command,
    child_environ,
    create_plugin_app,
    worker_command,
)
from shared.settings import Settings, load_settings


def test_plugin_names_in_port_order():
    assert PLUGIN_NAMES == ("slack", "email", "telegram", "teams", "kakao-mock")


def test_children_rebuild_the_same_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env file
    settings = Settings(
        data_dir=tmp_path / "d",
        api_port=9999,
        cookie_secure=True,
        bootstrap_admin_email="a@example.com",
        bootstrap_admin_password="long-enough",
        log_level="DEBUG",
    )

    rebuilt = load_settings(child_environ(settings, base={}))

    # The embedded Redis becomes an explicit URL: every child must use the one of `up`.
    assert rebuilt == replace(settings, redis_url=f"unix://{tmp_path / 'd' / 'redis.sock'}")


def test_a_relative_data_dir_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    environ = child_environ(Settings(data_dir=Path("./data")), base={})

    assert environ["AISOPSFLOW_DATA_DIR"] == str(tmp_path / "data")
    assert environ["AISOPSFLOW_REDIS_URL"] == f"unix://{tmp_path / 'data' / 'redis.sock'}"


def test_a_configured_redis_is_passed_on_and_stale_values_are_dropped():
    settings = Settings(redis_url="redis://redis:6379/0")
    base = {"PATH": "/bin", "AISOPSFLOW_DATABASE_URL": "", "AISOPSFLOW_REDIS_URL": "redis://old"}

    environ = child_environ(settings, base=base)

    assert environ["AISOPSFLOW_REDIS_URL"] == "redis://redis:6379/0"
    assert "AISOPSFLOW_DATABASE_URL" not in environ  # "" would not parse in the child
    assert environ["PATH"] == "/bin"
    assert environ["PYTHONUNBUFFERED"] == "1"


def test_api_command():
    argv = api_command(Settings(api_host="::1", api_port=8123, api_workers=3))

    assert argv[1:4] == ["-m", "gunicorn", "api.wsgi:app"]
    assert argv[argv.index("--bind") + 1] == "[::1]:8123"
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--access-logfile") + 1] == "-"


def test_worker_command():
    argv = worker_command(Settings(worker_processes=2, worker_threads=5))

    assert argv[1:4] == ["-m", "dramatiq", "worker.main:setup"]
    assert argv[argv.index("--processes") + 1] == "2"
    assert argv[argv.index("--threads") + 1] == "5"


def test_unknown_plugin_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="slack, email, telegram, teams, kakao-mock"):
        create_plugin_app(Settings(data_dir=tmp_path), "pager")


def test_workers_poll_redis_at_the_configured_ceiling(make_settings, monkeypatch):
    from ops.processes import worker_environ

    monkeypatch.delenv("dramatiq_worker_timeout", raising=False)
    assert worker_environ(make_settings())["dramatiq_worker_timeout"] == "30"
    assert worker_environ(make_settings(worker_poll_ms="250"))["dramatiq_worker_timeout"] == "250"
