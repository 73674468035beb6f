"""gunicorn serving one plugin app built in this process (it has no import path to give)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.config import Config


def control_socket_options() -> dict[str, Any]:
    """gunicorn settings that turn its control socket off, where gunicorn has one.

    gunicorn >= 25.1 opens a control socket at one fixed path per user by default; the
    API and five plugins would fight over it, and nothing here uses it.
    """
    return {"control_socket_disable": True} if "control_socket_disable" in Config().settings else {}


class _Server(BaseApplication):
    def __init__(self, app: Flask, options: Mapping[str, Any]) -> None:
        self._app = app
        self._options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app


def serve(app: Flask, options: Mapping[str, Any]) -> NoReturn:
    """Run gunicorn with ``options`` (its setting names) until SIGTERM; exits the process."""
    _Server(app, {**options, **control_socket_options()}).run()
    # gunicorn's arbiter exits the process itself; this is reached only if it returns.
    raise SystemExit(0)
