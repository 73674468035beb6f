"""A worker SIGKILLed mid-step: after a restart the execution finishes and no finished step runs twice."""

from __future__ import annotations

import time

from tests.support.processes import Process


def test_sigkill_during_a_slow_step_then_restart(engine, loopback):
    loopback.route("/slow", delay_seconds=4)
    engine.put_workflow(
        "crash",
        f"""
id: crash
name: crash in the middle
triggers: [{{type: webhook}}]
steps:
  - id: first
    type: http
    url: {loopback.url}/first
  - id: slow
    type: http
    url: {loopback.url}/slow
    timeout_seconds: 10
  - id: last
    type: http
    url: {loopback.url}/last
""",
    )
    execution_id = engine.hook("crash", {}).json["execution_id"]
    deadline = time.monotonic() + 20
    while loopback.count("/slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loopback.count("/slow") == 1, engine.worker.output()[-3000:]

    engine.worker.kill()
    restarted_at = time.monotonic()
    engine.worker = Process(engine.settings, ["worker"], engine.tmp_path / "worker-2.log").start()
    view = engine.wait_for(execution_id, timeout=45)

    assert view["status"] == "succeeded", view
    assert time.monotonic() - restarted_at < 30
    assert loopback.count("/first") == 1 and loopback.count("/last") == 1
    assert loopback.count("/slow") == 2
    assert engine.step(view, "slow")["attempt"] == 2
