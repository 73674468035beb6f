"""Enrollment end to end: a token from the API, `aisopsflow runner enroll`, the runner online with its inventory.

Must show (issue 11): enroll with a token -> runner online with its inventory and
labels; the same token again, an expired token and a wrong CA fingerprint -> each
refused with a clear message.
"""

from __future__ import annotations

from tests.support.runner_stack import RunnerStack

INVENTORY_FIELDS = ("hostname", "os", "kernel", "arch", "cpus", "memory_bytes", "ips")


def test_two_enrolled_runners_are_online_with_their_inventory_and_labels(stack: RunnerStack):
    answer = stack.create_token({"zone": "a", "role": "db"})
    assert answer["ca_sha256"] and len(answer["ca_sha256"]) == 64
    assert str(stack.settings.gateway_enroll_port) in answer["gateway"]
    assert "aisopsflow runner enroll" in answer["command"] and answer["token"] in answer["command"]

    first = stack.new_agent("db-1")
    done = stack.enroll_command(
        first, answer["token"], ca_sha256=answer["ca_sha256"], labels={"role": "web", "os": "x"}
    )
    assert done.returncode == 0, done.stderr
    first.runner_id = done.runner_id
    first.start()
    second = stack.enroll("web-1", labels={"role": "web"})
    first.wait_status("online")

    listed = {item["id"]: item for item in stack.get("/api/runners").json()["items"]}
    assert set(listed) == {first.runner_id, second.runner_id}
    view = listed[first.runner_id]
    assert view["status"] == "online" and view["last_seen_at"]
    # The admin's labels (on the token) win over the runner's own.
    assert view["labels"] == {"zone": "a", "role": "db", "os": "x"}
    for name in INVENTORY_FIELDS:
        assert view["inventory"].get(name) not in (None, "", []), (name, view["inventory"])
    assert view["cert_not_after"] and view["enrolled_at"]
    assert listed[second.runner_id]["labels"] == {"role": "web"}
    assert stack.get(f"/api/runners/{first.runner_id}").json()["labels"] == view["labels"]


def test_a_used_or_expired_token_and_a_wrong_ca_fingerprint_are_refused(stack: RunnerStack):
    answer = stack.create_token()
    used = stack.new_agent("first")
    assert (
        stack.enroll_command(used, answer["token"], ca_sha256=answer["ca_sha256"]).returncode == 0
    )

    again = stack.enroll_command(
        stack.new_agent("again"), answer["token"], ca_sha256=answer["ca_sha256"]
    )
    assert again.returncode == 1, again
    assert "enrollment token already used" in again.stderr, again.stderr

    stale = stack.create_token()
    stack.expire_token(stale["token"])
    expired = stack.enroll_command(
        stack.new_agent("expired"), stale["token"], ca_sha256=stale["ca_sha256"]
    )
    assert expired.returncode == 1, expired
    assert "enrollment token expired" in expired.stderr, expired.stderr

    fresh = stack.create_token()
    wrong = "ab" * 32
    pinned = stack.enroll_command(stack.new_agent("pinned"), fresh["token"], ca_sha256=wrong)
    assert pinned.returncode == 1, pinned
    assert "CA fingerprint mismatch" in pinned.stderr, pinned.stderr
    assert f"expected {wrong}" in pinned.stderr and fresh["ca_sha256"] in pinned.stderr
    # Nothing was sent to the impostor: the token is still good for the real gateway.
    ok = stack.enroll_command(
        stack.new_agent("later"), fresh["token"], ca_sha256=fresh["ca_sha256"]
    )
    assert ok.returncode == 0, ok.stderr

    for refused in (again, expired, pinned):
        assert refused.runner_id == ""
        assert "Traceback" not in refused.stderr, refused.stderr
    assert len(stack.get("/api/runners").json()["items"]) == 2
