"""Another tenant's resources answer 404 on get, update and delete, and never show in a list."""

from __future__ import annotations

import pytest

# Each resource: how acme creates one, its collection, and a valid update body.
RESOURCES = {
    "users": {
        "create": (
            "POST",
            "/api/users",
            {"email": "kim@acme.test", "password": "long-enough-1", "role": "viewer"},
        ),
        "collection": "/api/users",
        "item": "/api/users/{id}",
        "update": ("PATCH", {"role": "operator"}),
    },
    "recipients": {
        "create": ("POST", "/api/recipients", {"name": "Kim", "phone": "01012345678"}),
        "collection": "/api/recipients",
        "item": "/api/recipients/{id}",
        "update": ("PATCH", {"name": "Kim Lee"}),
    },
    "groups": {
        "create": ("POST", "/api/groups", {"name": "oncall-l1"}),
        "collection": "/api/groups",
        "item": "/api/groups/{id}",
        "update": ("PATCH", {"name": "oncall-l2"}),
    },
    "group-members": {
        "create": ("POST", "/api/groups", {"name": "dba"}),
        "collection": "/api/groups",
        "item": "/api/groups/{id}/members",
        "update": ("PUT", {"members": []}),
        "no_delete": True,
    },
    "kakao-templates": {
        "create": (
            "POST",
            "/api/kakao/templates",
            {"provider_id": "mock", "template_id": "ops_alert_v1", "required_vars": ["host"]},
        ),
        "collection": "/api/kakao/templates",
        "item": "/api/kakao/templates/{id}",
        "update": ("PATCH", {"active": False}),
    },
    "kakao-providers": {
        "create": (
            "POST",
            "/api/kakao/providers",
            {"id": "acme-relay", "base_url": "http://10.1.2.3:8080"},
        ),
        "collection": "/api/kakao/providers",
        "item": "/api/kakao/providers/{id}",
        "update": ("PATCH", {"active": False}),
    },
    "secrets": {
        "create": ("PUT", "/api/secrets/DB_PASSWORD", {"value": "acme-only"}),
        "collection": "/api/secrets",
        "item": "/api/secrets/{id}",
        "update": ("PUT", {"value": "globex-overwrite"}),
        "id_field": "key",
        "no_get": True,
    },
}


def _create(world, spec):
    method, path, body = spec["create"]
    response = world.call("acme-admin", method, path, json=body)
    assert response.status_code in (200, 201), response.json
    return response.json[spec.get("id_field", "id")]


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_other_tenant_gets_404_and_never_sees_it(world, name):
    spec = RESOURCES[name]
    resource_id = _create(world, spec)
    item = spec["item"].format(id=resource_id)
    update_method, update_body = spec["update"]

    listing = world.call("globex-admin", "GET", spec["collection"])
    assert listing.status_code == 200
    assert resource_id not in str(listing.json)

    if not spec.get("no_get"):
        assert world.call("globex-admin", "GET", item).status_code == 404
    if spec.get("id_field") != "key":
        # PUT on a secret key creates the globex secret of that name: a different row.
        assert world.call("globex-admin", update_method, item, json=update_body).status_code == 404
    if not spec.get("no_delete"):
        deleted = world.call("globex-admin", "DELETE", item)
        assert deleted.status_code == 404
        assert deleted.json["message"].endswith("not found")

    # acme's resource is untouched by all of that.
    if not spec.get("no_get"):
        assert world.call("acme-admin", "GET", item).status_code == 200
    assert resource_id in str(world.call("acme-admin", "GET", spec["collection"]).json)


def test_a_secret_put_by_another_tenant_does_not_touch_the_first(world, saas_app):
    from shared import secrets_store
    from shared.db import connection

    world.call("acme-admin", "PUT", "/api/secrets/DB_PASSWORD", json={"value": "acme-value"})
    world.call("globex-admin", "PUT", "/api/secrets/DB_PASSWORD", json={"value": "globex-value"})

    ring = saas_app.extensions["aisopsflow.keys"].get()
    with connection():
        assert secrets_store.read_all(ring, world.tenants["acme"]) == {"DB_PASSWORD": "acme-value"}
        assert secrets_store.read_all(ring, world.tenants["globex"]) == {
            "DB_PASSWORD": "globex-value"
        }


def test_group_members_must_be_recipients_of_the_same_tenant(world):
    acme_recipient = world.call("acme-admin", "POST", "/api/recipients", json={"name": "Kim"}).json[
        "id"
    ]

    response = world.call(
        "globex-admin", "POST", "/api/groups", json={"name": "ops", "members": [acme_recipient]}
    )

    assert response.status_code == 422
    assert acme_recipient in response.json["message"]
    assert world.call("globex-admin", "GET", "/api/groups").json == []  # nothing half-written


def test_audit_rows_are_per_tenant(world):
    world.call("acme-admin", "POST", "/api/recipients", json={"name": "Kim"})

    acme = world.call("acme-admin", "GET", "/api/audit?action=recipient.create").json
    globex = world.call("globex-admin", "GET", "/api/audit?action=recipient.create").json

    assert len(acme) == 1 and globex == []


def test_saas_webhook_names_its_tenant_by_query_or_header(world, saas_settings):
    from shared.db import connection
    from shared.errors import NotFound
    from shared.tenancy import webhook_tenant

    with connection():
        assert webhook_tenant(saas_settings, {"tenant": "acme"}, {}).id == world.tenants["acme"]
        assert (
            webhook_tenant(saas_settings, {}, {"X-AisOpsFlow-Tenant": "globex"}).id
            == world.tenants["globex"]
        )
        for query in ({}, {"tenant": "initech"}):
            with pytest.raises(NotFound):
                webhook_tenant(saas_settings, query, {})


GATE = """
id: gate
name: gate
triggers: [{type: webhook}]
steps:
  - id: ask
    type: approval
"""


def test_workflows_executions_and_approvals_are_per_tenant(world, saas_settings):
    from tests.support.steps import run_pending_steps

    world.call(
        "acme-admin", "PUT", "/api/workflows/gate", data=GATE, content_type="application/yaml"
    )
    execution_id = world.client.post("/api/hooks/gate?tenant=acme", json={}).json["execution_id"]
    run_pending_steps(saas_settings, execution_id)
    other = "globex-admin"

    assert world.call(other, "GET", "/api/workflows").json == []
    for method, path in [
        ("GET", "/api/workflows/gate"),
        ("DELETE", "/api/workflows/gate"),
        ("POST", "/api/workflows/gate/enable"),
        ("POST", "/api/workflows/gate/disable"),
        ("GET", f"/api/executions/{execution_id}"),
        ("POST", f"/api/executions/{execution_id}/retry"),
        ("POST", f"/api/executions/{execution_id}/cancel"),
    ]:
        assert world.call(other, method, path).status_code == 404, (method, path)
    assert (
        world.call(
            other,
            "POST",
            f"/api/approvals/{execution_id}/ask/resolve",
            json={"decision": "approve"},
        ).status_code
        == 404
    )
    assert world.client.post("/api/hooks/gate?tenant=globex", json={}).status_code == 404
    assert world.call(other, "GET", "/api/executions").json["items"] == []
    assert world.call(other, "GET", "/api/approvals").json == []

    assert (
        world.call("acme-admin", "GET", f"/api/executions/{execution_id}").json["status"]
        == "waiting_approval"
    )
    assert [
        item["execution_id"] for item in world.call("acme-admin", "GET", "/api/approvals").json
    ] == [execution_id]
