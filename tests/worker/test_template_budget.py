"""A step template over its work budget fails the step for good: no retry, no request sent."""

from __future__ import annotations

NESTED = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"


def test_a_costly_step_template_fails_its_step_without_retrying(engine, loopback):
    engine.put_workflow(
        "costly",
        f"""
id: costly
name: costly template
triggers:
  - type: webhook
steps:
  - id: call
    type: http
    url: "{loopback.url}/x?q={NESTED}"
    retry: {{max: 3, backoff_ms: 0}}
""",
    )

    view = engine.wait_for(engine.hook("costly", {"a": 1}).json["execution_id"], timeout=60)

    call = engine.step(view, "call")
    assert view["status"] == "failed" and call["status"] == "failed"
    assert "too much work" in call["error"] and "the limit for step templates" in call["error"]
    assert call["attempt"] == 1
    assert loopback.count("/x") == 0
