"""/healthz says whether the database and Redis answer."""

from __future__ import annotations

import socket
import time


def test_healthz_is_ok_when_everything_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "db": "ok",
        "redis": "ok",
        "disk": "ok",
        "scheduler": "no tick yet",
    }


def test_healthz_names_a_stale_scheduler(app, client, settings):
    from shared.heartbeat import record_tick

    redis_client = app.extensions["aisopsflow.redis"]
    record_tick(redis_client, settings, time.time())
    fresh = client.get("/healthz")
    record_tick(redis_client, settings, time.time() - 120)
    stale = client.get("/healthz")
    redis_client.delete(f"{settings.redis_namespace}:scheduler:last_tick")

    assert fresh.status_code == 200 and fresh.json["scheduler"] == "ok"
    assert stale.status_code == 503 and stale.json["scheduler"].startswith(
        "down: last tick 120 s ago"
    )


def test_healthz_is_503_naming_redis_when_it_is_down(make_settings, tmp_path):
    from api.app import create_app
    from shared.bootstrap import prepare

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        redis_url=f"redis://127.0.0.1:{closed_port}/0",
    )
    prepare(settings)

    response = create_app(settings).test_client().get("/healthz")

    assert response.status_code == 503
    assert response.json["db"] == "ok" and response.json["redis"].startswith("down")
    assert response.json["status"] == "degraded"
