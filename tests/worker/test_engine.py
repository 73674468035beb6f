"""The engine end to end: webhook -> real Dramatiq worker process -> loopback HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor

from shared.db import connection
from shared.models import AuditLog, Execution


def http_workflow(url: str, *, retry: str = "", timeout: int = 10, extra_steps: str = "") -> str:
    return f"""
id: web
name: condition then http
triggers:
  - type: webhook
    dedupe_key: "{{{{ body.id }}}}"
steps:
  - id: check
    type: condition
    expr: body.severity == 'critical'
  - id: call
    type: http
    method: POST
    url: {url}/remediate
    json:
      host: "{{{{ body.host }}}}"
    timeout_seconds: {timeout}
    {retry}
{extra_steps}
"""


def test_webhook_condition_http_succeeds_and_a_later_step_reads_the_json_output(engine, loopback):
    loopback.route("/remediate", body={"ticket": "OPS-7", "freed_bytes": 1024})
    follow_up = f"""
  - id: report
    type: http
    method: POST
    url: {loopback.url}/report
    json:
      ticket: "{{{{ steps.call.body.ticket }}}}"
      freed: "{{{{ steps.call.body.freed_bytes }}}}"
"""
    engine.put_workflow("web", http_workflow(loopback.url, extra_steps=follow_up))

    response = engine.hook("web", {"id": "a1", "severity": "critical", "host": "db-1"})
    assert response.status_code == 202
    assert response.json["status"] == "queued" and response.json["deduplicated"] is False
    view = engine.wait_for(response.json["execution_id"])

    assert view["status"] == "succeeded", (view["error_summary"], view["steps"])
    assert [step["status"] for step in view["steps"]] == ["succeeded", "succeeded", "succeeded"]
    assert '"host": "db-1"' in loopback.hits["/remediate"][0]["body"]
    assert loopback.hits["/remediate"][0]["headers"]["Idempotency-Key"] == f"{view['id']}:call"
    assert '"ticket": "OPS-7"' in loopback.hits["/report"][0]["body"]
    assert engine.step(view, "call")["output"]["body"] == {"ticket": "OPS-7", "freed_bytes": 1024}


def test_a_false_condition_skips_the_rest_and_succeeds(engine, loopback):
    engine.put_workflow("web", http_workflow(loopback.url))

    view = engine.wait_for(
        engine.hook("web", {"id": "a2", "severity": "info"}).json["execution_id"]
    )

    assert view["status"] == "succeeded"
    assert [step["status"] for step in view["steps"]] == ["succeeded", "skipped"]
    assert loopback.count("/remediate") == 0


def test_503_twice_then_success_on_attempt_3_with_backoff_between(engine, loopback):
    loopback.route("/remediate", statuses=[503, 503, 200])
    retry = "retry: {max: 3, backoff_ms: 300, jitter: false}"
    engine.put_workflow("web", http_workflow(loopback.url, retry=retry))

    view = engine.wait_for(
        engine.hook("web", {"id": "r1", "severity": "critical", "host": "db-1"}).json[
            "execution_id"
        ]
    )

    assert view["status"] == "succeeded", (view["error_summary"], view["steps"])
    assert engine.step(view, "call")["attempt"] == 3
    times = [hit["at"] for hit in loopback.hits["/remediate"]]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.6  # 300 ms, then doubled


def test_a_slow_server_times_out_each_attempt_and_fails_naming_the_step(engine, loopback):
    loopback.route("/remediate", delay_seconds=3)
    retry = "retry: {max: 1, backoff_ms: 100}"
    engine.put_workflow("web", http_workflow(loopback.url, retry=retry, timeout=1))

    view = engine.wait_for(
        engine.hook("web", {"id": "t1", "severity": "critical", "host": "db-1"}).json[
            "execution_id"
        ]
    )

    assert view["status"] == "failed"
    assert "'call'" in view["error_summary"] and "timed out after 1 s" in view["error_summary"]
    assert engine.step(view, "call")["attempt"] == 2
    assert loopback.count("/remediate") == 2


def test_4xx_is_not_retried(engine, loopback):
    loopback.route("/remediate", statuses=[404])
    engine.put_workflow("web", http_workflow(loopback.url, retry="retry: {max: 3, backoff_ms: 50}"))

    view = engine.wait_for(
        engine.hook("web", {"id": "n1", "severity": "critical", "host": "db-1"}).json[
            "execution_id"
        ]
    )

    assert view["status"] == "failed" and "HTTP 404" in view["error_summary"]
    assert loopback.count("/remediate") == 1


def test_50_concurrent_identical_webhooks_start_one_execution(engine, loopback):
    engine.put_workflow("web", http_workflow(loopback.url))
    app = engine.client.application

    def fire(_: int):
        return app.test_client().post(
            "/api/hooks/web", json={"id": "same-alert", "severity": "info"}
        )

    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(fire, range(50)))

    ids = {response.json["execution_id"] for response in responses}
    assert len(ids) == 1
    assert sorted(response.status_code for response in responses) == [200] * 49 + [202]
    assert sum(response.json["deduplicated"] for response in responses) == 49
    with connection():
        assert Execution.select().count() == 1


def test_github_hmac_test_vector_verifies_and_bad_signatures_are_401(engine, loopback):
    engine.client.put(
        "/api/secrets/GH", json={"value": "It's a Secret to Everybody"}, headers=engine.headers()
    )
    engine.put_workflow(
        "gh",
        """
id: gh
name: github
triggers:
  - type: webhook
    auth: {type: hmac, secret: GH, header: X-Hub-Signature-256, algorithm: sha256, prefix: "sha256="}
steps:
  - id: ok
    type: condition
    expr: "true"
""",
    )
    good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    accepted = engine.client.post(
        "/api/hooks/gh",
        data="Hello, World!",
        content_type="text/plain",
        headers={"X-Hub-Signature-256": good},
    )
    refused = engine.client.post(
        "/api/hooks/gh",
        data="Hello, World!",
        content_type="text/plain",
        headers={"X-Hub-Signature-256": good[:-1] + "0"},
    )
    missing = engine.client.post("/api/hooks/gh", data="Hello, World!", content_type="text/plain")

    assert accepted.status_code == 202, accepted.json
    assert refused.status_code == 401 and missing.status_code == 401
    assert good not in str(refused.json)
    with connection():
        assert Execution.select().count() == 1
        assert AuditLog.select().where(AuditLog.action == "hook.auth_failed").count() == 2


def test_a_stale_timestamp_is_401(engine):
    engine.client.put(
        "/api/secrets/SLACK", json={"value": "signing-secret"}, headers=engine.headers()
    )
    engine.put_workflow(
        "sl",
        """
id: sl
name: slack-style
triggers:
  - type: webhook
    auth: {type: hmac, secret: SLACK, header: X-Slack-Signature, prefix: "v0=", timestamp_header: X-Slack-Request-Timestamp}
steps:
  - id: ok
    type: condition
    expr: "true"
""",
    )

    def signed(timestamp: int) -> dict[str, str]:
        digest = hmac.new(
            b"signing-secret", f"v0:{timestamp}:payload".encode(), hashlib.sha256
        ).hexdigest()
        return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(timestamp)}

    fresh = engine.client.post(
        "/api/hooks/sl", data="payload", content_type="text/plain", headers=signed(int(time.time()))
    )
    stale = engine.client.post(
        "/api/hooks/sl",
        data="payload",
        content_type="text/plain",
        headers=signed(int(time.time()) - 600),
    )

    assert fresh.status_code == 202
    assert stale.status_code == 401 and "stale" in stale.json["message"]


def test_sandbox_escape_and_undefined_variables_fail_the_step_clearly(engine, loopback):
    engine.put_workflow(
        "bad",
        f"""
id: bad
name: bad templates
triggers:
  - type: webhook
steps:
  - id: escape
    type: http
    url: "{loopback.url}/x?q={{{{ body | attr('__cla' ~ 'ss__') }}}}"
    continue_on_error: true
  - id: undefined
    type: http
    url: "{loopback.url}/x?q={{{{ body.nothing.deeper }}}}"
""",
    )

    view = engine.wait_for(engine.hook("bad", {"a": 1}).json["execution_id"])

    assert view["status"] == "failed"
    escape, undefined = engine.step(view, "escape"), engine.step(view, "undefined")
    assert (
        escape["status"] == "failed" and "unsafe" in escape["error"] and "attr(" in escape["error"]
    )
    assert undefined["status"] == "failed" and "nothing" in undefined["error"]
    assert loopback.count("/x") == 0


def test_an_obvious_escape_is_refused_at_upload(engine):
    response = engine.client.put(
        "/api/workflows/bad",
        data="id: bad\nname: b\ntriggers: [{type: webhook}]\nsteps:\n  - id: s\n    type: http\n    url: \"{{ ''.__class__.__mro__ }}\"\n",
        content_type="application/yaml",
        headers=engine.headers(),
    )

    assert response.status_code == 422
    assert response.json["errors"]["yaml"][0]["path"] == "steps[0].url"


def test_retry_reruns_only_from_the_failed_step(engine, loopback):
    loopback.route("/remediate", statuses=[500, 200])
    engine.put_workflow("web", http_workflow(loopback.url))
    execution_id = engine.hook("web", {"id": "rt", "severity": "critical", "host": "db-1"}).json[
        "execution_id"
    ]
    assert engine.wait_for(execution_id)["status"] == "failed"

    retried = engine.client.post(f"/api/executions/{execution_id}/retry", headers=engine.headers())
    view = engine.wait_for(execution_id)

    assert retried.status_code == 200
    assert view["status"] == "succeeded"
    assert engine.step(view, "check")["attempt"] == 1  # not re-run
    assert loopback.count("/remediate") == 2
    again = engine.client.post(f"/api/executions/{execution_id}/retry", headers=engine.headers())
    assert again.status_code == 409


def test_cancel_a_waiting_execution(engine):
    engine.put_workflow(
        "gate",
        """
id: gate
name: gate
triggers: [{type: webhook}]
steps:
  - id: ask
    type: approval
""",
    )
    execution_id = engine.hook("gate", {}).json["execution_id"]
    engine.wait_for(execution_id, ("waiting_approval",))

    cancelled = engine.client.post(
        f"/api/executions/{execution_id}/cancel", headers=engine.headers()
    )

    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert (
        engine.client.post(
            f"/api/executions/{execution_id}/cancel", headers=engine.headers()
        ).status_code
        == 409
    )


def test_notify_to_an_unreachable_plugin_is_retried_then_fails_cleanly(engine):
    engine.put_workflow(
        "tell",
        """
id: tell
name: notify
triggers: [{type: webhook}]
steps:
  - id: say
    type: notify
    targets: [slack.ops-alerts]
    message: "disk full on {{ body.host }}"
    retry: {max: 1, backoff_ms: 50}
""",
    )

    view = engine.wait_for(engine.hook("tell", {"host": "db-1"}).json["execution_id"])

    say = engine.step(view, "say")
    assert view["status"] == "failed" and say["attempt"] == 2
    assert "unreachable" in say["error"] and "'slack'" in say["error"]
    assert say["output"]["output"]["results"][0]["ok"] is False


def test_when_false_skips_one_step_and_retry_on_picks_what_is_retried(engine, loopback):
    loopback.route("/flaky", statuses=[404, 200])
    engine.put_workflow(
        "mix",
        f"""
id: mix
name: when and retry_on
triggers: [{{type: webhook}}]
steps:
  - id: maybe
    type: http
    url: {loopback.url}/never
    when: "body.env == 'prod'"
  - id: flaky
    type: http
    url: {loopback.url}/flaky
    retry: {{max: 2, backoff_ms: 50, retry_on: [404]}}
""",
    )

    view = engine.wait_for(engine.hook("mix", {"env": "staging"}).json["execution_id"])

    assert view["status"] == "succeeded"
    assert engine.step(view, "maybe")["status"] == "skipped" and loopback.count("/never") == 0
    assert engine.step(view, "flaky")["attempt"] == 2
