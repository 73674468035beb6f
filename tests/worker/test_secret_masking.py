"""A secret in error text, or transformed by a template or a server, is masked everywhere.

Workflows run on a real Dramatiq worker process against a loopback server: an
http step whose URL holds the secret fails (closed port, invalid URL), templates
fail while reading the secret, and steps send slices, reversed, upper-cased,
joined and URL-encoded forms of it to an echo server or get base64 of it back.
Then every GET of the API is read as each role, and the database rows and the
worker's and API's logs are searched for the plaintext and each transformed form.
"""

from __future__ import annotations

import base64
import logging
import re
import socket
import uuid
from urllib.parse import quote, quote_plus

import pytest

from shared.db import connection
from shared.models import ROLES, Approval, AuditLog, Execution, StepRun

SECRET = f"Zq/{uuid.uuid4().hex[:20]}+Kx=W"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


#: What must never be stored or shown: the value, what templates made of it, what the server echoed.
LEAKS = {
    "plaintext": SECRET,
    "prefix": SECRET[:6],
    "suffix": SECRET[-6:],
    "reversed": SECRET[::-1],
    "upper": SECRET.upper(),
    "joined": "-".join(SECRET),
    "listed": "', '".join(SECRET),
    "urlencoded": quote(SECRET, safe="/"),
    "quote_plus": quote_plus(SECRET),
    "base64": _b64(SECRET).rstrip("="),
    "base64 inside Basic": _b64("user:" + SECRET)[8:-4],
    "hex": SECRET.encode().hex(),
}

ECHOED = {
    "prefix": "{{ secrets.API_KEY[:6] }}",
    "suffix": "{{ secrets.API_KEY[-6:] }}",
    "reversed": "{{ secrets.API_KEY | reverse }}",
    "upper": "{{ secrets.API_KEY | upper }}",
    "joined": "{{ secrets.API_KEY | join('-') }}",
    "listed": "{{ secrets.API_KEY | list }}",
    "urlencoded": "{{ secrets.API_KEY | urlencode }}",
}


def _workflow(workflow_id: str, steps: str) -> str:
    return f"""
id: {workflow_id}
name: {workflow_id}
triggers:
  - type: webhook
steps:
{steps}"""


def _echo_step(name: str, template: str, url: str) -> str:
    return f"""
  - id: {name}
    type: http
    method: POST
    url: {url}/echo
    body: "{template}"
"""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _workflows(url: str) -> dict[str, str]:
    failing_query = "&".join(f"{name}={template}" for name, template in ECHOED.items())
    echoes = "".join(_echo_step(name, template, url) for name, template in ECHOED.items())
    transforms = f"""{echoes}
  - id: encoded
    type: http
    url: {url}/encoded
  - id: fails
    type: http
    method: POST
    url: "{url}/fail?{failing_query}"
"""
    return {
        "closed_port": f"""
  - id: call
    type: http
    url: "http://127.0.0.1:{_closed_port()}/x?key={{{{ secrets.API_KEY }}}}"
    retry: {{max: 1, backoff_ms: 50, jitter: false}}
""",
        "bad_url": """
  - id: call
    type: http
    url: "{{ secrets.API_KEY }}/x"
""",
        "template_error": f"""
  - id: call
    type: http
    url: "{url}/echo/{{{{ body[secrets.API_KEY] }}}}"
""",
        "condition_error": """
  - id: check
    type: condition
    expr: "body[secrets.API_KEY] == 1"
""",
        "transforms": transforms,
        "ask": """
  - id: ask
    type: approval
    message: "deploy with {{ secrets.API_KEY[:8] }} ({{ secrets.API_KEY | upper }})"
""",
    }


def _leaks(text: str) -> list[str]:
    return [name for name, form in LEAKS.items() if form in text]


@pytest.fixture
def secret_world(engine, loopback):
    loopback.route("/echo", body="echo")
    loopback.route("/fail", statuses=[500])
    loopback.route(
        "/encoded",
        body={
            "token": _b64(SECRET),
            "seen": "Basic " + _b64("user:" + SECRET),
            "hex": LEAKS["hex"],
        },
    )
    response = engine.client.put(
        "/api/secrets/API_KEY", json={"value": SECRET}, headers=engine.headers()
    )
    assert response.status_code in (200, 201), response.json
    views = {}
    for workflow_id, steps in _workflows(loopback.url).items():
        engine.put_workflow(workflow_id, _workflow(workflow_id, steps))
        response = engine.hook(workflow_id, {"n": 1})
        assert response.status_code == 202, response.json
        views[workflow_id] = response.json["execution_id"]
    ended = ("succeeded", "failed", "waiting_approval")
    views = {key: engine.wait_for(execution_id, ended) for key, execution_id in views.items()}
    return engine, views


def test_failing_steps_store_and_show_no_secret_in_their_errors(secret_world, loopback):
    engine, views = secret_world

    for workflow_id in ("closed_port", "bad_url", "template_error", "condition_error"):
        view = views[workflow_id]
        step = view["steps"][0]
        assert view["status"] == "failed", (workflow_id, view)
        assert not _leaks(step["error"] + view["error_summary"]), (workflow_id, step["error"])
        if workflow_id != "bad_url":  # its message shows no more than the URL's origin
            assert "***" in step["error"] and "***" in view["error_summary"], (workflow_id, step)
    assert "failed to connect" in views["closed_port"]["steps"][0]["error"]
    assert "failed: MissingSchema" in views["bad_url"]["steps"][0]["error"]
    assert "has no attribute" in views["template_error"]["steps"][0]["error"]
    assert views["ask"]["status"] == "waiting_approval"


def test_transformed_forms_of_a_secret_are_masked_in_outputs_and_errors(secret_world, loopback):
    engine, views = secret_world
    view = views["transforms"]

    sent = [hit["body"] for hit in loopback.hits["/echo"]]
    assert sent[: len(ECHOED)] == [
        SECRET[:6],
        SECRET[-6:],
        SECRET[::-1],
        SECRET.upper(),
        "-".join(SECRET),
        str(list(SECRET)),
        quote(SECRET, safe="/"),
    ]  # the steps really sent each form
    assert view["status"] == "failed" and engine.step(view, "fails")["status"] == "failed"
    for step in view["steps"]:
        shown = str(step["output"]) + str(step["input"]) + str(step["error"])
        assert not _leaks(shown), (step["step_id"], _leaks(shown), shown)
        assert step["step_id"] == "fails" or "***" in str(step["output"]), step
    assert not _leaks(view["error_summary"]) and view["error_summary"].count("***") >= 5


def test_no_role_reads_a_secret_form_in_any_api_answer_row_or_log_line(secret_world, caplog):
    caplog.set_level(logging.DEBUG)
    engine, views = secret_world
    spec = engine.client.get("/api/openapi.json").json
    reads = [path for path, item in spec["paths"].items() if "get" in item]
    ids = {"workflow_id": list(views), "execution_id": [view["id"] for view in views.values()]}
    tokens = {role: engine.user_token(role) for role in ROLES if role != "admin"}
    tokens["admin"] = engine.token

    answers = 0
    for role, token in tokens.items():
        for path in reads:
            names = re.findall(r"\{(\w+)\}", path)
            values = ids.get(names[0], ["none"]) if names else [None]
            for value in values:
                url = re.sub(r"\{\w+\}", str(value), path)
                for query in ("", "?status=pending", "?limit=200"):
                    response = engine.client.get(url + query, headers=engine.headers(token))
                    answers += 1
                    assert response.status_code < 500, (role, url, response.json)
                    assert not _leaks(response.get_data(as_text=True)), (role, url + query)
    assert answers > 100

    with connection():
        audit = [row.metadata_redacted + row.target for row in AuditLog.select()]
        runs = [run.input_redacted + run.output_redacted + (run.error or "") for run in StepRun]
        executions = [(row.error_summary or "") + row.trigger_context for row in Execution]
        approvals = [row.message for row in Approval.select()]
    assert any("***" in row for row in audit) and any("***" in text for text in approvals)
    for text in audit + runs + executions + approvals:
        assert not _leaks(text), (_leaks(text), text)
    for process in (engine.worker, engine.scheduler):
        assert not _leaks(process.output()), (process.command, _leaks(process.output()))
    assert not _leaks(caplog.text), _leaks(caplog.text)
