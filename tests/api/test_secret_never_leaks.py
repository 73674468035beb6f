"""A secret's value shows up in no response, log line or audit row, whatever endpoint is called."""

from __future__ import annotations

import logging
import re
import uuid

from shared.db import connection
from shared.models import AuditLog

SECRET_VALUE = f"leak-canary-{uuid.uuid4().hex}"

# Bodies for the operations that take one; the rest are sent without a body.
BODIES = {
    ("post", "/api/login"): {"email": "admin@acme.test", "password": "correct-horse-battery"},
    ("post", "/api/users"): {
        "email": "new@acme.test",
        "password": "long-enough-1",
        "role": "viewer",
    },
    ("patch", "/api/users/{user_id}"): {"role": "operator"},
    ("post", "/api/recipients"): {"name": "Lee"},
    ("patch", "/api/recipients/{recipient_id}"): {"name": "Lee Kim"},
    ("post", "/api/groups"): {"name": "dba"},
    ("patch", "/api/groups/{group_id}"): {"name": "dba-2"},
    ("put", "/api/groups/{group_id}/members"): {"members": []},
    ("put", "/api/secrets/{key}"): {"value": SECRET_VALUE},
}


def _order(operation: tuple[str, str]) -> tuple[int, str]:
    """Deletes, then logout, run last: they end what the other calls use."""
    method, path = operation
    if path == "/api/logout":
        return 2, path
    return (1 if method == "delete" else 0), path


def test_secret_value_appears_nowhere(world, caplog):
    caplog.set_level(logging.DEBUG)
    admin = "acme-admin"
    world.call(admin, "PUT", "/api/secrets/DB_PASSWORD", json={"value": SECRET_VALUE})
    ids = {
        "user_id": world.users["acme-viewer"],
        "recipient_id": world.call(admin, "POST", "/api/recipients", json={"name": "Kim"}).json[
            "id"
        ],
        "group_id": world.call(admin, "POST", "/api/groups", json={"name": "oncall"}).json["id"],
        "key": "DB_PASSWORD",
    }
    spec = world.client.get("/api/openapi.json").json
    operations = sorted(
        (
            (method, path)
            for path, item in spec["paths"].items()
            for method in item
            if method != "parameters"
        ),
        key=_order,
    )

    exercised = []
    for method, path in operations:
        url = re.sub(r"\{(\w+)\}", lambda match: ids[match.group(1)], path)
        body = BODIES.get((method, path))
        response = world.call(admin, method.upper(), url, json=body)
        exercised.append((method, path, response.status_code))
        assert response.status_code < 500, (method, path, response.json)
        assert SECRET_VALUE not in response.get_data(as_text=True), (method, path)
        assert SECRET_VALUE not in str(response.headers), (method, path)

    assert len(exercised) == len(operations) >= 15
    assert SECRET_VALUE not in caplog.text
    with connection():
        assert not [
            row for row in AuditLog.select() if SECRET_VALUE in row.metadata_redacted + row.target
        ]
