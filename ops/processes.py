"""One function per long-running process; each runs in the foreground until SIGTERM."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from shared.settings import BUNDLED_PLUGINS, PREFIX, Settings

if TYPE_CHECKING:
    from flask import Flask

#: Bundled plugins in port order: under `up`, plugin i listens on plugin_base_port + i.
PLUGIN_MODULES = {
    "slack": "plugins.slack.app",
    "email": "plugins.email.app",
    "telegram": "plugins.telegram.app",
    "teams": "plugins.teams.app",
    "kakao-mock": "plugins.kakao_mock.app",
}
PLUGIN_NAMES = BUNDLED_PLUGINS
assert tuple(PLUGIN_MODULES) == PLUGIN_NAMES, "PLUGIN_MODULES must list BUNDLED_PLUGINS in order"

#: gunicorn's gthread worker class, answering what gunicorn refuses itself in JSON.
WORKER_CLASS = "ops.gunicorn_worker.JsonErrorWorker"
#: Threads per gunicorn worker process (gthread) for the API.
API_THREADS = 4
#: Threads of the single gunicorn worker process of a plugin.
PLUGIN_THREADS = 4
#: How long gunicorn lets requests in flight finish after SIGTERM, in milliseconds.
#: Below `up`'s 10 s stop timeout and Docker's default 10 s stop grace period.
GRACEFUL_TIMEOUT_MS = 8000
#: How long a Dramatiq worker lets messages in flight finish after SIGTERM, in milliseconds.
WORKER_SHUTDOWN_TIMEOUT_MS = 8000

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def settings_environ(settings: Settings) -> dict[str, str]:
    """The ``AISOPSFLOW_*`` variables that reproduce ``settings`` in a child process.

    Empty values are left out: they mean "the default", and some parsers refuse "".
    The data dir is made absolute and the Redis URL resolved, so every child uses the
    same files and, without AISOPSFLOW_REDIS_URL, the one embedded Redis of `up`.
    """
    environ: dict[str, str] = {}
    for item in fields(Settings):
        value: Any = getattr(settings, item.name)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, Path):
            text = str(value.resolve())
        else:
            text = str(value)
        if text:
            environ[PREFIX + item.metadata["env"]] = text
    environ[PREFIX + "REDIS_URL"] = settings.resolved_redis_url
    return environ


def child_environ(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: ``base`` (default ours) with the settings."""
    environ = dict(os.environ if base is None else base)
    for item in fields(Settings):
        environ.pop(PREFIX + item.metadata["env"], None)
    environ.update(settings_environ(settings))
    # Children write to pipes; unbuffered output keeps `up`'s prefixed lines timely.
    environ["PYTHONUNBUFFERED"] = "1"
    return environ


def configure_logging(settings: Settings) -> None:
    """Log to standard error at the configured level, unless logging is already set up."""
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)


def bind_address(host: str, port: int) -> str:
    """``host:port`` for gunicorn's ``--bind``, bracketing IPv6 addresses."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def api_command(settings: Settings) -> list[str]:
    """The gunicorn command line serving ``api.wsgi:app``."""
    from ops.plugin_server import control_socket_options

    argv = [
        sys.executable, "-m", "gunicorn", "api.wsgi:app",
        "--bind", bind_address(settings.api_host, settings.api_port),
        "--workers", str(settings.api_workers),
        "--worker-class", WORKER_CLASS,
        "--threads", str(API_THREADS),
        "--graceful-timeout", str(GRACEFUL_TIMEOUT_MS // 1000),
        "--access-logfile", "-",
        "--error-logfile", "-",
        "--log-level", settings.log_level.lower(),
    ]  # fmt: skip
    if control_socket_options():
        argv.append("--no-control-socket")
    return argv


def run_api(settings: Settings) -> NoReturn:
    """Replace this process with gunicorn serving the API on api_host:api_port."""
    argv = api_command(settings)
    os.execve(argv[0], argv, child_environ(settings))  # noqa: S606 - fixed argv, no shell


def worker_command(settings: Settings) -> list[str]:
    """The ``dramatiq`` command line running the worker pool."""
    argv = [
        sys.executable, "-m", "dramatiq", "worker.main:setup",
        "--processes", str(settings.worker_processes),
        "--threads", str(settings.worker_threads),
        "--worker-shutdown-timeout", str(WORKER_SHUTDOWN_TIMEOUT_MS),
    ]  # fmt: skip
    if settings.log_level == "DEBUG":
        argv.append("--verbose")
    return argv


def run_worker(settings: Settings) -> NoReturn:
    """Replace this process with the Dramatiq worker pool (worker_processes x worker_threads)."""
    argv = worker_command(settings)
    os.execve(argv[0], argv, worker_environ(settings))  # noqa: S606 - fixed argv, no shell


def worker_environ(settings: Settings) -> dict[str, str]:
    """The worker's environment: the settings, plus Dramatiq's idle poll ceiling.

    Dramatiq reads ``dramatiq_worker_timeout`` (ms) when dramatiq.worker is imported; its
    CLI has no flag. 30 ms measured a p50 of ~35 ms webhook -> succeeded (bench/engine.py)
    against ~300 ms at Dramatiq's default of 1000 ms.
    """
    environ = child_environ(settings)
    # An explicit dramatiq_worker_timeout in the environment (bench/engine.py sets one) wins.
    environ.setdefault("dramatiq_worker_timeout", str(settings.worker_poll_ms))
    return environ


def run_scheduler(settings: Settings) -> int:
    """Run the scheduler loop until SIGTERM or SIGINT; returns the exit code."""
    from scheduler.main import main

    configure_logging(settings)
    return main(settings)


def run_gateway(settings: Settings) -> int:
    """Run the runner gateway (enrollment + mTLS servers) until SIGTERM or SIGINT; returns the exit code."""
    from ops.gateway.server import main

    configure_logging(settings)
    return main(settings)


def create_plugin_app(settings: Settings, name: str) -> Flask:
    """The Flask app of the bundled plugin ``name`` (one of PLUGIN_NAMES)."""
    if name not in PLUGIN_MODULES:
        raise ValueError(f"plugin {name!r}: expected one of {', '.join(PLUGIN_NAMES)}")
    module = importlib.import_module(PLUGIN_MODULES[name])
    return module.create_app(settings)


def run_plugin(settings: Settings, name: str, host: str, port: int) -> NoReturn:
    """Serve the bundled plugin ``name`` on host:port under gunicorn until SIGTERM."""
    from ops.plugin_server import serve

    configure_logging(settings)
    app = create_plugin_app(settings, name)
    options = {
        "bind": [bind_address(host, port)],
        "workers": 1,
        "worker_class": WORKER_CLASS,
        "threads": PLUGIN_THREADS,
        "graceful_timeout": GRACEFUL_TIMEOUT_MS // 1000,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": f"aisopsflow-plugin-{name}",
    }
    serve(app, options)
