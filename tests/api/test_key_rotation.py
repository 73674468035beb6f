"""A running API keeps working across `aisopsflow secret rotate-key`."""

from __future__ import annotations

from shared import secrets_store
from shared.db import connection

GUARDED = """
id: guarded
name: token-guarded hook
triggers:
  - type: webhook
    auth: {type: token, secret: HOOK_TOKEN, header: X-Hook-Token}
steps:
  - id: ok
    type: condition
    expr: "true"
"""


def test_the_api_reads_secrets_rotated_under_it(world, saas_settings):
    world.call("acme-admin", "PUT", "/api/secrets/HOOK_TOKEN", json={"value": "hook-token-value"})
    world.call(
        "acme-admin", "PUT", "/api/workflows/guarded", data=GUARDED, content_type="application/yaml"
    )
    before = world.client.post(
        "/api/hooks/guarded?tenant=acme", json={}, headers={"X-Hook-Token": "hook-token-value"}
    )

    with connection():
        secrets_store.rotate_key(
            saas_settings
        )  # re-encrypts HOOK_TOKEN under a key the API never saw
    after = world.client.post(
        "/api/hooks/guarded?tenant=acme", json={}, headers={"X-Hook-Token": "hook-token-value"}
    )

    assert before.status_code == after.status_code == 202
