"""A tenant always keeps an admin: the last one can be neither demoted nor deleted."""

from __future__ import annotations

import threading

from shared.db import connection
from shared.errors import Conflict
from shared.models import User
from shared.tenancy import ensure_default_tenant
from shared.users import update_user


def test_the_last_admin_cannot_demote_themselves(world):
    response = world.call(
        "globex-admin",
        "PATCH",
        f"/api/users/{world.users['globex-admin']}",
        json={"role": "viewer"},
    )

    assert response.status_code == 409
    assert response.json["code"] == 409 and "last admin" in response.json["message"]
    me = world.call("globex-admin", "GET", "/api/me")
    assert me.json["role"] == "admin"


def test_an_admin_may_step_down_once_another_admin_exists(world):
    operator = world.users["acme-operator"]
    admin = world.users["acme-admin"]

    promoted = world.call("acme-admin", "PATCH", f"/api/users/{operator}", json={"role": "admin"})
    stepped_down = world.call("acme-admin", "PATCH", f"/api/users/{admin}", json={"role": "viewer"})
    last = world.call("acme-operator", "PATCH", f"/api/users/{operator}", json={"role": "viewer"})

    assert promoted.status_code == 200
    assert stepped_down.status_code == 200 and stepped_down.json["role"] == "viewer"
    assert last.status_code == 409


def test_the_last_admin_cannot_be_deleted(world, saas_settings):
    # Given a second admin who is then deleted by the first
    operator = world.users["acme-operator"]
    world.call("acme-admin", "PATCH", f"/api/users/{operator}", json={"role": "admin"})
    assert world.call("acme-admin", "DELETE", f"/api/users/{operator}").status_code == 204

    # When the now only admin is deleted (through the shared function: the API refuses self-delete)
    with connection():
        try:
            from shared.users import delete_user

            delete_user(world.tenants["acme"], world.users["acme-admin"], actor="test")
        except Conflict as error:
            refused = error
        else:
            refused = None

    # Then it is refused and the admin remains
    assert refused is not None and "last admin" in refused.message
    assert world.call("acme-admin", "GET", "/api/me").status_code == 200


def test_editing_the_last_admin_without_a_role_change_is_allowed(world):
    admin = world.users["globex-admin"]

    response = world.call(
        "globex-admin",
        "PATCH",
        f"/api/users/{admin}",
        json={"role": "admin", "email": "boss@globex.test"},
    )

    assert response.status_code == 200 and response.json["email"] == "boss@globex.test"


def test_two_admins_demoting_each_other_at_once_leave_one_admin(db, make_settings):
    # Given a tenant with exactly two admins, on every backend
    settings = make_settings()
    tenant = ensure_default_tenant(settings).id
    first = User.create(tenant=tenant, email="a@example.test", password_hash="x", role="admin")
    second = User.create(tenant=tenant, email="b@example.test", password_hash="x", role="admin")
    db.close()
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(user_id: str) -> None:
        with connection():
            start.wait(timeout=10)
            try:
                update_user(tenant, user_id, {"role": "viewer"}, actor="test")
                outcomes.append("demoted")
            except Conflict:
                outcomes.append("refused")

    # When each is demoted at the same moment
    threads = [threading.Thread(target=demote, args=(user.id,)) for user in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then one is refused and one admin remains
    assert sorted(outcomes) == ["demoted", "refused"]
    with connection():
        assert User.select().where(User.role == "admin").count() == 1
