"""Liveness of the API and the parts it depends on."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint

from api.auth import public
from shared.db import database

blp = Blueprint("health", __name__, description="Health")


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "ok or degraded"})
    db = ma.fields.String(required=True)
    redis = ma.fields.String(required=True)


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
    """200 when the database and Redis answer; 503 naming the part that does not."""
    parts = {
        "db": _probe(lambda: database.obj.execute_sql("SELECT 1")),
        "redis": _probe(lambda: current_app.extensions["aisopsflow.redis"].ping()),
    }
    healthy = all(value == "ok" for value in parts.values())
    return {"status": "ok" if healthy else "degraded", **parts}, 200 if healthy else 503
