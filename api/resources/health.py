"""Liveness of the API and the parts it depends on."""

from __future__ import annotations

import time
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint

from api.auth import public
from shared.db import database
from shared.heartbeat import scheduler_health

blp = Blueprint("health", __name__, description="Health")


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "ok or degraded"})
    db = ma.fields.String(required=True)
    redis = ma.fields.String(required=True)
    scheduler = ma.fields.String(
        required=True, metadata={"description": "ok, no tick yet, or down: last tick N s ago"}
    )


def _probe(check: Any) -> str:
    try:
        check()
    except Exception as error:  # noqa: BLE001 - any failure means the part is down
        return f"down: {type(error).__name__}"
    return "ok"


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="A part is down")
@public
def get_healthz() -> Any:
    """200 when the database and Redis answer and the scheduler ticks; 503 naming what does not."""
    client = current_app.extensions["aisopsflow.redis"]
    parts = {
        "db": _probe(lambda: database.obj.execute_sql("SELECT 1")),
        "redis": _probe(client.ping),
    }
    healthy = all(value == "ok" for value in parts.values())
    if parts["redis"] == "ok":
        scheduler_ok, parts["scheduler"] = scheduler_health(
            client, current_app.config["SETTINGS"], time.time()
        )
        healthy = healthy and scheduler_ok
    else:
        parts["scheduler"] = "unknown: Redis is down"
    return {"status": "ok" if healthy else "degraded", **parts}, 200 if healthy else 503
