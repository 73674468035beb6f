"""A secret's value shows up in no response, log line, step input/output or audit row.

A workflow sends the secret to a loopback server that echoes it back; its steps
run through the real step runner in this process. The same value is a Kakao
provider's credential, which a send-test presents to that server. Then every
documented operation is called.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

import pytest

from shared.db import connection, write_transaction
from shared.dispatch import Dispatcher
from shared.keyring import keyring
from shared.models import AuditLog, RunnerJob, StepRun, utcnow
from shared.runners import jobs
from tests.support.loopback import Loopback
from tests.support.runner_rows import make_runner, signed_result
from tests.support.steps import run_pending_steps

SECRET_VALUE = f"leak-canary-{uuid.uuid4().hex}"

WORKFLOW = """
id: leaky
name: sends a secret to an echo server
triggers:
  - type: webhook
    path: main
steps:
  - id: call
    type: http
    method: POST
    url: {url}/echo
    headers:
      Authorization: "Bearer {{{{ secrets.DB_PASSWORD }}}}"
    json:
      password: "{{{{ secrets.DB_PASSWORD }}}}"
      note: "x{{{{ secrets.DB_PASSWORD }}}}y"
  - id: ask
    type: approval
"""

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
    ("post", "/api/hooks/{workflow_id}"): {"password": SECRET_VALUE},
    ("post", "/api/hooks/{workflow_id}/{path}"): {"alert": "disk"},
    ("post", "/api/approvals/{execution_id}/{step_id}/resolve"): {"decision": "approve"},
    ("post", "/api/kakao/templates"): {"provider_id": "acme-sms", "template_id": "t2"},
    ("patch", "/api/kakao/templates/{template_row_id}"): {"description": "changed"},
    ("patch", "/api/kakao/providers/{provider_id}"): {"credentials": {"token": SECRET_VALUE}},
    ("post", "/api/kakao/send-test"): {
        "provider": "acme-sms",
        "template_id": "t1",
        "to": ["010-1234-5678"],
    },
    ("put", "/api/ops/runner-denylist/{runner_id}"): {"reason": "test"},
    ("put", "/api/ops/runner-revocations/{sha256}"): {"reason": "test"},
    ("post", "/api/kakao/delivery-events"): {
        "tenant_id": "t_x",
        "provider_id": "acme-sms",
        "events": [],
    },
}


def _order(operation: tuple[str, str]) -> tuple[int, str]:
    """Deletes, then logout, run last: they end what the other calls use."""
    method, path = operation
    if path == "/api/logout":
        return 2, path
    return (1 if method == "delete" else 0), path


def _runner_job_that_saw_the_secret(tenant_id: str, settings) -> tuple[str, str, str]:  # noqa: ANN001
    """A runner whose job carried the secret in its env, printed it, and reported it in its error."""
    fingerprint = "ab" * 32
    with connection():
        runner, key = make_runner(tenant_id, fingerprint=fingerprint)
        now = utcnow()
        with write_transaction():
            job = RunnerJob.create(
                tenant=tenant_id,
                runner=runner.id,
                status="accepted",
                payload=jobs.seal_payload(
                    f'{{"env": {{"DB_PASSWORD": "{SECRET_VALUE}"}}}}'.encode(), keyring(settings)
                ),
                signature="00" * 64,
                nonce="n" * 32,
                not_after=now + timedelta(seconds=300),
                deadline_at=now + timedelta(seconds=60),
                timeout_seconds=30,
                accepted_at=now,
            )
        jobs.record_log_chunk(
            runner.id, job.id, 1, "stdout", f"password={SECRET_VALUE}\n".encode(), settings=settings
        )
        payload, signature = signed_result(
            key, job.id, runner.id, status="failed", exit_code=1, error=f"bad {SECRET_VALUE}"
        )
        jobs.record_result(
            runner.id,
            job.id,
            2,
            payload,
            signature,
            dispatcher=Dispatcher(settings),
            settings=settings,
        )
    return runner.id, job.id, fingerprint


@pytest.fixture
def echo():
    with Loopback() as server:
        server.route("/echo", body="echo")
        server.route("/kakao/alimtalk/send", body="echo")
        yield server


def test_secret_value_appears_nowhere(world, saas_settings, echo, caplog):
    caplog.set_level(logging.DEBUG)
    admin = "acme-admin"
    world.call(admin, "PUT", "/api/secrets/DB_PASSWORD", json={"value": SECRET_VALUE})
    world.call(
        admin,
        "PUT",
        "/api/workflows/leaky",
        data=WORKFLOW.format(url=echo.url),
        content_type="application/yaml",
    )
    execution_id = world.client.post("/api/hooks/leaky/main?tenant=acme", json={"x": 1}).json[
        "execution_id"
    ]
    run_pending_steps(saas_settings, execution_id)
    assert SECRET_VALUE in echo.hits["/echo"][0]["body"]  # the step really used it
    provider = {"id": "acme-sms", "base_url": echo.url, "credentials": {"token": SECRET_VALUE}}
    assert world.call(admin, "POST", "/api/kakao/providers", json=provider).status_code == 201
    template = {"provider_id": "acme-sms", "template_id": "t1"}
    template_row_id = world.call(admin, "POST", "/api/kakao/templates", json=template).json["id"]
    BODIES[("post", "/api/kakao/providers")] = {**provider, "id": "acme-sms-2"}
    runner_id, job_id, fingerprint = _runner_job_that_saw_the_secret(
        world.tenants["acme"], saas_settings
    )

    ids = {
        "user_id": world.users["acme-viewer"],
        "recipient_id": world.call(admin, "POST", "/api/recipients", json={"name": "Kim"}).json[
            "id"
        ],
        "group_id": world.call(admin, "POST", "/api/groups", json={"name": "oncall"}).json["id"],
        "key": "DB_PASSWORD",
        "workflow_id": "leaky",
        "path": "main",
        "execution_id": execution_id,
        "step_id": "ask",
        "token": "not-a-valid-link-token",
        "provider_id": "acme-sms",
        "template_row_id": template_row_id,
        "runner_id": runner_id,
        "job_id": job_id,
        "sha256": fingerprint,
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
        if path.startswith("/api/hooks"):
            url += "?tenant=acme"
        if (method, path) == ("put", "/api/workflows/{workflow_id}"):
            response = world.call(
                admin,
                "PUT",
                url,
                data=WORKFLOW.format(url=echo.url) + "\n",
                content_type="application/yaml",
            )
        else:
            response = world.call(admin, method.upper(), url, json=BODIES.get((method, path)))
        exercised.append((method, path, response.status_code))
        assert response.status_code < 500, (method, path, response.json)
        assert SECRET_VALUE not in response.get_data(as_text=True), (method, path)
        assert SECRET_VALUE not in str(response.headers), (method, path)

    assert len(exercised) == len(operations) >= 25
    sent = echo.hits["/kakao/alimtalk/send"]
    assert sent and sent[0]["headers"]["Authorization"] == f"Bearer {SECRET_VALUE}"
    assert SECRET_VALUE not in caplog.text
    with connection():
        assert not [
            row for row in AuditLog.select() if SECRET_VALUE in row.metadata_redacted + row.target
        ]
        for run in StepRun.select():
            assert SECRET_VALUE not in run.input_redacted + run.output_redacted + (run.error or "")
        for job in RunnerJob.select():  # its env is sealed, its output and error masked
            assert SECRET_VALUE not in job.payload + (job.result_json or "") + (job.error or "")
