"""The one place errors become HTTP: every failure answers JSON ``{code, status, message, errors?}``."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import peewee
from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from shared.disk_space import DiskFullMemory, is_disk_full
from shared.errors import AisOpsFlowError, InsufficientStorage, TooManyRequests

log = logging.getLogger(__name__)

#: Seconds a caller is told to wait when the database stayed locked past its busy timeout.
DATABASE_BUSY_RETRY_AFTER_SECONDS = 2

#: What a caller is told when a write failed for a full disk.
DISK_FULL_MESSAGE = (
    "the server's disk is full, so nothing was saved; free space on the database's disk "
    "(and the data dir), then retry"
)


def error_response(
    status: int, message: str, errors: Any = None, headers: dict | None = None
) -> ResponseReturnValue:
    """The JSON error body every route answers with."""
    body: dict[str, Any] = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), status, headers or {}


def _flatten(messages: Any, path: str = "") -> list[str]:
    """``{"json": {"email": ["Missing..."]}}`` -> ``["json.email: Missing..."]``."""
    if isinstance(messages, dict):
        lines = []
        for key, value in messages.items():
            lines.extend(_flatten(value, f"{path}.{key}" if path else str(key)))
        return lines
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return [f"{path}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for item in messages for line in _flatten(item, path)]
    return [f"{path}: {messages}"]


def handle_app_error(error: AisOpsFlowError) -> ResponseReturnValue:
    """Our own errors carry their status and a message written for the caller."""
    headers = {}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if error.status_code >= 500:
        log.error("%s: %s", type(error).__name__, error.message)
    return error_response(error.status_code, error.message, error.errors, headers)


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    """Werkzeug and webargs errors (routing, 413, schema validation) in the same shape."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("messages") or data.get("errors")
    if errors:
        message = "request validation failed: " + "; ".join(_flatten(errors))
    else:
        message = data.get("message") or error.description or HTTPStatus(status).phrase
    headers = dict(data.get("headers") or {})
    if isinstance(error, NotFound) and not data:
        message = f"no route for {request.method} {request.path}"
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or []))
        headers["Allow"] = allowed
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    return error_response(status, message, errors, headers)


def _database_locked(error: Exception) -> bool:
    """SQLite's "database is locked" (or "database table is locked"), as peewee wraps it."""
    return isinstance(error, peewee.OperationalError) and "is locked" in str(error)


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    """Anything else is a bug: log it with its traceback, tell the caller nothing internal.

    Except a full disk, whatever driver reports it: 507, and /healthz fails for a while;
    and SQLite still locked after its busy timeout (another writer held it): nothing
    was written, so 503 with Retry-After tells the caller to send it again.
    """
    if is_disk_full(error):
        log.error("a write failed: the disk is full (%s)", type(error).__name__)
        current_app.extensions["aisopsflow.disk_full"].record()
        return handle_app_error(InsufficientStorage(DISK_FULL_MESSAGE))
    if _database_locked(error):
        log.warning("database busy, answered 503: %s", error)
        return error_response(
            503,
            "the database is busy (another writer holds its lock); retry shortly",
            headers={"Retry-After": str(DATABASE_BUSY_RETRY_AFTER_SECONDS)},
        )
    log.exception("unhandled error")
    return error_response(500, "internal error; the server log has the details")


def register(app: Flask) -> None:
    """Install the handlers (after flask-smorest's, which they replace)."""
    app.extensions["aisopsflow.disk_full"] = DiskFullMemory()
    app.register_error_handler(AisOpsFlowError, handle_app_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
