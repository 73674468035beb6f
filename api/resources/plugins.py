"""The bundled plugins: where Core reaches each one and what its probe says."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint

from api.auth import require
from shared.domain.permissions import READ
from shared.errors import ChannelError
from shared.plugin_client import PluginClient
from shared.settings import BUNDLED_PLUGINS

blp = Blueprint("plugins", __name__, url_prefix="/api/plugins", description="Plugins")

#: Seconds a probe may take.
PROBE_TIMEOUT_SECONDS = 2.0
#: Seconds a probe result is reused before plugins are asked again.
PROBE_CACHE_SECONDS = 10.0


class PluginSchema(ma.Schema):
    name = ma.fields.String(required=True)
    url = ma.fields.String(required=True)
    probed_at = ma.fields.Float(required=True, metadata={"description": "epoch seconds"})
    probe = ma.fields.Dict(
        required=True, metadata={"description": "the plugin's /probe answer, or {ok: false, error}"}
    )


def _probe(client: PluginClient, name: str) -> dict[str, Any]:
    try:
        return client.post(name, "/probe", {}, timeout_seconds=PROBE_TIMEOUT_SECONDS)
    except ChannelError as error:
        return {"ok": False, "plugin": name, "error": error.message}


@blp.route("", methods=["GET"])
@blp.response(200, PluginSchema(many=True))
@require(READ)
def list_plugins() -> Any:
    """Each bundled plugin with its URL and last probe result (probed at most every 10 s)."""
    cache = current_app.extensions.setdefault("aisopsflow.plugin_probes", {})
    if not cache or time.time() - cache.get("at", 0) > PROBE_CACHE_SECONDS:
        client = PluginClient(current_app.config["SETTINGS"])
        with ThreadPoolExecutor(max_workers=len(BUNDLED_PLUGINS)) as pool:
            answers = dict(
                zip(
                    BUNDLED_PLUGINS,
                    pool.map(lambda name: _probe(client, name), BUNDLED_PLUGINS),
                    strict=True,
                )
            )
        cache.update(at=time.time(), answers=answers)
    settings = current_app.config["SETTINGS"]
    return [
        {
            "name": name,
            "url": settings.plugin_url(name),
            "probed_at": cache["at"],
            "probe": cache["answers"][name],
        }
        for name in BUNDLED_PLUGINS
    ]
