"""List endpoints cost a fixed number of queries, however many rows they return (no N+1)."""

from __future__ import annotations

import logging

import pytest


class QueryCounter(logging.Handler):
    """Counts the SQL statements peewee logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def queries_for(world, path: str) -> int:
    logger = logging.getLogger("peewee")
    counter = QueryCounter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        assert world.call("acme-admin", "GET", path).status_code == 200
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)
    return counter.count


@pytest.mark.parametrize(
    "path", ["/api/groups", "/api/recipients", "/api/users", "/api/secrets", "/api/audit"]
)
def test_list_query_count_does_not_grow_with_rows(world, path):
    recipient = world.call("acme-admin", "POST", "/api/recipients", json={"name": "r0"}).json["id"]
    world.call("acme-admin", "POST", "/api/groups", json={"name": "g0", "members": [recipient]})
    world.call("acme-admin", "PUT", "/api/secrets/S0", json={"value": "v"})
    few = queries_for(world, path)

    for number in range(1, 8):
        recipient = world.call(
            "acme-admin", "POST", "/api/recipients", json={"name": f"r{number}"}
        ).json["id"]
        world.call(
            "acme-admin", "POST", "/api/groups", json={"name": f"g{number}", "members": [recipient]}
        )
        world.call("acme-admin", "PUT", f"/api/secrets/S{number}", json={"value": "v"})
        world.call(
            "acme-admin",
            "POST",
            "/api/users",
            json={"email": f"u{number}@acme.test", "password": "long-enough-1", "role": "viewer"},
        )

    assert queries_for(world, path) == few
