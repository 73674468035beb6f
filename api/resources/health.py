"""Liveness of the API and the parts it depends on."""

from __future__ import annotations

import time
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint

from api.auth import public
from shared.db import database
from shared.disk_space import free_bytes
from shared.heartbeat import scheduler_health
from shared.settings import Settings

MIB = 1024 * 1024

blp = Blueprint("health", __name__, description="Health")


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "ok or degraded"})
    db = ma.fields.String(required=True)
    redis = ma.fields.String(required=True)
    disk = ma.fields.String(
        required=True,
        metadata={"description": "ok, low: N MiB free in the data dir, or full: a write failed"},
    )
    scheduler = ma.fields.String(
        required=True, metadata={"description": "ok, no tick yet, or down: last tick N s ago"}
    )


def _probe(check: Any) -> str:
    try:
        check()
    except Exception as error:  # noqa: BLE001 - any failure means the part is down
        return f"down: {type(error).__name__}"
    return "ok"


def _disk(settings: Settings) -> str:
    if current_app.extensions["aisopsflow.disk_full"].seen_within():
        return "full: a write failed for a full disk in the last minute"
    try:
        free_mib = free_bytes(settings.data_dir) // MIB
    except OSError as error:
        return f"unknown: {type(error).__name__}"
    if free_mib < settings.min_free_disk_mb:
        return f"low: {free_mib} MiB free in the data dir (below {settings.min_free_disk_mb} MiB)"
    return "ok"


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="A part is down")
@public
def get_healthz() -> Any:
    """200 when the database and Redis answer, the disk has room and the scheduler ticks; 503 naming what does not."""
    settings = current_app.config["SETTINGS"]
    client = current_app.extensions["aisopsflow.redis"]
    parts = {
        "db": _probe(lambda: database.obj.execute_sql("SELECT 1")),
        "redis": _probe(client.ping),
        "disk": _disk(settings),
    }
    healthy = all(value == "ok" for value in parts.values())
    if parts["redis"] == "ok":
        scheduler_ok, parts["scheduler"] = scheduler_health(client, settings, time.time())
        healthy = healthy and scheduler_ok
    else:
        parts["scheduler"] = "unknown: Redis is down"
    return {"status": "ok" if healthy else "degraded", **parts}, 200 if healthy else 503
