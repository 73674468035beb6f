"""A transaction that loses a deadlock is run again (in_write_transaction), or reported as a 503 conflict."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pymysql
import pytest

from shared.conflicts import is_conflict
from shared.db import in_write_transaction, write_transaction
from shared.errors import TransactionConflict
from shared.models import Tenant

#: Seconds a thread waits for the other to hold its first lock.
MEET_TIMEOUT_SECONDS = 10


@pytest.fixture
def tenants(db):
    return [Tenant.create(name=name, slug=name, mode="saas").id for name in ("left", "right")]


def _rename(tenant_id: str, name: str) -> None:
    Tenant.update(name=name).where(Tenant.id == tenant_id).execute()


def _crosswise(db, body: Callable[[str, str, str], None], tenants: list[str]) -> list[object]:
    """Two threads lock the two rows in opposite orders, meeting in between: a deadlock."""
    results: list[object] = []

    def run(first: str, second: str) -> None:
        db.connect(reuse_if_open=True)  # peewee keeps one connection per thread
        try:
            body(first, second, threading.current_thread().name)
            results.append("committed")
        except BaseException as error:  # noqa: BLE001 - returned to the test
            results.append(error)
        finally:
            db.close()

    threads = [
        threading.Thread(target=run, args=(tenants[0], tenants[1]), name="a"),
        threading.Thread(target=run, args=(tenants[1], tenants[0]), name="b"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_the_loser_of_a_deadlock_is_run_again_and_both_commit(db, tenants):
    meet = threading.Barrier(2, timeout=MEET_TIMEOUT_SECONDS)
    runs: Counter[str] = Counter()

    @in_write_transaction
    def swap(first: str, second: str, who: str) -> None:
        runs[who] += 1
        _rename(first, f"{who}-1")
        if runs[who] == 1:
            meet.wait()  # both hold their first row: each now waits for the other's
        _rename(second, f"{who}-2")

    results = _crosswise(db, swap, tenants)

    assert results == ["committed", "committed"]
    assert sorted(runs.values()) == [1, 2]  # the database chose one victim; it ran twice


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_deadlock_in_a_plain_transaction_is_a_503_conflict_and_saves_nothing(db, tenants):
    meet = threading.Barrier(2, timeout=MEET_TIMEOUT_SECONDS)

    def swap(first: str, second: str, who: str) -> None:
        with write_transaction():
            _rename(first, f"{who}-1")
            meet.wait()
            _rename(second, f"{who}-2")

    results = _crosswise(db, swap, tenants)

    conflicts = [result for result in results if isinstance(result, TransactionConflict)]
    assert len(conflicts) == 1 and results.count("committed") == 1
    assert conflicts[0].status_code == 503 and "send it again" in conflicts[0].message
    names = {tenant.name for tenant in Tenant.select()}
    assert len({name.split("-")[0] for name in names}) == 1  # only the winner's change is saved


def test_a_conflict_answers_503_json(app):
    @app.route("/api/conflict")
    def conflict():
        raise TransactionConflict("the database aborted this change; send it again")

    app.view_functions["conflict"]._public = True

    response = app.test_client().get("/api/conflict")

    assert response.status_code == 503
    assert response.json["message"] == "the database aborted this change; send it again"


@pytest.mark.parametrize(
    ("error", "conflict"),
    [
        (pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"), True),
        (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), True),
        (pymysql.err.OperationalError(2013, "Lost connection to server"), False),
        (pymysql.err.IntegrityError(1062, "Duplicate entry"), False),
        (ValueError(1213), False),
    ],
)
def test_which_driver_errors_are_conflicts(error, conflict):
    assert is_conflict(error) is conflict
