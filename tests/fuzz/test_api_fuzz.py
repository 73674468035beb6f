"""Schemathesis over the API's own /api/openapi.json: no operation answers 5xx or non-JSON.

Every operation is called with data that fits its schema and with data that does not,
as an admin and as a viewer, through the WSGI app in-process (fast, no sockets), on
PostgreSQL. Webhooks get raw requests of any content type besides. The number of
examples is bounded and generation derandomized, so a CI run is repeatable and short;
only "no 5xx, JSON body" is checked, not full conformance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from shared.db import connection
from shared.models import User
from shared.sessions import open_session
from shared.tenancy import tenant_by_slug

#: Examples per operation and generation mode, each sent as every role; the suite stays
#: well under 3 minutes on a busy 2-core machine.
MAX_EXAMPLES = 4
#: Fewer for operations that hash or check a password: argon2 spends ~0.1 s a call on purpose.
FEWER_EXAMPLES = {("POST", "/api/login"): 2, ("POST", "/api/users"): 2}
#: Examples of raw webhook requests (any content type, any bytes).
HOOK_EXAMPLES = 150
#: Answers without a body.
BODILESS = frozenset({204, 304})
#: Seeded so that generated calls reach past "no such workflow" (webhooks especially).
SEED_WORKFLOW = """\
id: fuzz
name: Fuzz target
vars:
  greeting: hello
triggers:
  - type: webhook
    dedupe_key: "{{ body.id }}"
  - type: webhook
    path: main
steps:
  - id: ping
    type: http
    url: https://example.com/ping
"""
#: Where outbound HTTP goes during the fuzz: a closed loopback port (refused at once).
NOWHERE = "http://127.0.0.1:9"


@dataclass
class Target:
    """The app, its schema, and the bearer header of each role."""

    schema: Any
    client: Any
    headers: dict[str, dict[str, str]]


@pytest.fixture
def backend() -> str:
    """PostgreSQL, the strictest backend: it refuses what SQLite stores (NUL, long text)."""
    return "postgres"


@pytest.fixture
def target(
    make_settings: Callable[..., Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Target:
    """The onprem API on PostgreSQL with an admin, a viewer and one webhook workflow."""
    from api.app import create_app
    from shared.bootstrap import prepare

    # Generated provider and target URLs must never leave the machine.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, NOWHERE)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    settings = make_settings(database_url=database_url)
    prepare(settings)
    app = create_app(settings)
    app.config["TESTING"] = True
    headers = {}
    with connection():
        tenant = tenant_by_slug(settings.default_tenant_slug)
        for role in ("admin", "viewer"):
            user = User.create(
                tenant=tenant, email=f"{role}@example.test", password_hash="x", role=role
            )
            headers[role] = {"Authorization": f"Bearer {open_session(settings, user)[0]}"}
    seeded = app.test_client().put(
        "/api/workflows/fuzz",
        data=SEED_WORKFLOW,
        content_type="application/yaml",
        headers=headers["admin"],
    )
    assert seeded.status_code == 200, seeded.json
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    return Target(schema, app.test_client(), headers)


def problem_with(status: int, content_type: str, text: str) -> str | None:
    """Why an answer breaks the rule (5xx, or a body that is not JSON); None if it keeps it."""
    if status >= 500:
        return f"answered {status}: {text[:300]}"
    if status not in BODILESS and not content_type.startswith("application/json"):
        return f"answered {status} as {content_type!r}, not JSON"
    return None


def fuzz(operation: Any, mode: GenerationMode, roles: dict[str, dict[str, str]]) -> list[str]:
    """MAX_EXAMPLES cases of ``operation``, each sent as every role; broken answers, described."""
    found: list[str] = []

    @settings(
        max_examples=FEWER_EXAMPLES.get((operation.method.upper(), operation.path), MAX_EXAMPLES),
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        for role, headers in roles.items():
            response = case.call(headers=headers)
            content_type = (response.headers.get("content-type") or [""])[0]
            problem = problem_with(response.status_code, content_type, response.text)
            if problem and len(found) < 3:
                found.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}, as {role}) "
                    f"{problem}\n    reproduce: {case.as_curl_command(headers=headers)[:600]}"
                )

    call()
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_operation_answers_5xx_or_non_json(target: Target, mode: GenerationMode) -> None:
    failures = []
    timings = []
    operations = [result.ok() for result in target.schema.get_all_operations()]
    # Logging out revokes the token every later call uses: fuzz it last.
    operations.sort(key=lambda operation: operation.path == "/api/logout")
    for operation in operations:
        started = time.monotonic()
        failures.extend(fuzz(operation, mode, target.headers))
        timings.append((time.monotonic() - started, f"{operation.method.upper()} {operation.path}"))

    assert len(operations) >= 50, [operation.path for operation in operations]
    assert not failures, f"{len(failures)} broken answers:\n" + "\n".join(failures)
    slowest = ", ".join(f"{name} {seconds:.1f} s" for seconds, name in sorted(timings)[-3:])
    print(f"fuzzed {len(operations)} operations in {sum(t for t, _ in timings):.1f} s; {slowest}")


#: JSON values with what breaks servers: NUL, lone surrogates, huge numbers, deep nesting.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["\x00", "a\x00b", "\ud800", "{{ body }}", "{% raw %}"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_texts = (
    json_values.map(json.dumps)
    | st.integers(min_value=60, max_value=1200).map(lambda depth: "[" * depth + "]" * depth)
    | st.sampled_from(['{"id": ' + "1" * 4301 + "}", '{"id": "\\u0000"}', "[" * 1000, "{"])
)
hook_requests = st.one_of(
    st.tuples(st.sampled_from(["application/json", "application/vnd.x+json"]), json_texts),
    st.tuples(st.just("application/x-www-form-urlencoded"), st.text(max_size=60)),
    st.tuples(
        st.sampled_from(["text/plain", "application/octet-stream", "", "application/json"]),
        st.binary(max_size=120),
    ),
)


@settings(
    max_examples=HOOK_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(
    path=st.sampled_from(["/api/hooks/fuzz", "/api/hooks/fuzz/main"]),
    request=hook_requests,
    query=st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3),
)
def test_webhooks_take_any_body_without_5xx(
    target: Target, path: str, request: tuple[str, Any], query: dict[str, str]
) -> None:
    content_type, data = request

    response = target.client.post(path, data=data, content_type=content_type, query_string=query)

    problem = problem_with(response.status_code, response.content_type or "", response.text)
    assert problem is None, f"POST {path} {content_type} {data!r:.300}: {problem}"
