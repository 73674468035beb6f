"""/healthz says whether the database and Redis answer."""

from __future__ import annotations

import socket


def test_healthz_is_ok_when_everything_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json == {"status": "ok", "db": "ok", "redis": "ok"}


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
