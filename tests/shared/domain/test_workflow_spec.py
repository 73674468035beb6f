"""Workflow documents: a typed model, and every problem reported at once with its place."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from shared.domain.templating import evaluate
from shared.domain.workflow_spec import (
    CronTrigger,
    RetryPolicy,
    SpecInvalid,
    SpecProblem,
    WebhookTrigger,
    parse_workflow,
    validate_document,
)
from shared.errors import ValidationError

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))
BAD_WORKFLOWS = sorted((Path(__file__).parent / "bad_workflows").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (?P<path>\S+) line (?P<line>\d+)(?:: (?P<text>.*))?$", re.M)

MINIMAL = """\
id: minimal
name: Minimal
triggers:
  - type: webhook
steps:
  - id: ping
    type: http
    url: https://example.com/ping
"""


def workflow(steps: str, *, triggers: str = "  - type: webhook\n", extra: str = "") -> str:
    """A document with ``steps`` (YAML list items, indented by two) and ``triggers``."""
    return f"id: wf\nname: WF\n{extra}triggers:\n{triggers}steps:\n{steps}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_examples_validate(path):
    assert validate_document(path.read_text()) == []


def test_examples_exist():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", BAD_WORKFLOWS, ids=[path.name for path in BAD_WORKFLOWS])
def test_each_bad_workflow_gives_its_path_and_line(path):
    text = path.read_text()
    expected = list(EXPECT.finditer(text))

    problems = validate_document(text)

    assert expected, f"{path.name} has no '# expect: <path> line <L>' comment"
    found = {(problem.path or "<document>", problem.line) for problem in problems}
    assert found == {(match["path"], int(match["line"])) for match in expected}
    for match in expected:
        messages = [
            problem.message
            for problem in problems
            if (problem.path or "<document>", problem.line) == (match["path"], int(match["line"]))
        ]
        assert any((match["text"] or "") in message for message in messages), messages


def test_problems_are_reported_together_with_line_and_column():
    text = """\
id: disk
name: 3
triggers:
  - type: pager
steps:
  - id: a
    type: http
    url: https://example.com
  - id: a
    type: teleport
colour: blue
"""

    problems = {problem.path: problem for problem in validate_document(text)}

    assert set(problems) == {"name", "triggers[0].type", "steps[1].id", "steps[1].type", "colour"}
    assert (problems["name"].line, problems["name"].column) == (2, 1)
    assert problems["steps[1].id"].line == 9 and "duplicate" in problems["steps[1].id"].message
    assert problems["colour"].message == "unknown field"


def test_broken_yaml_names_the_place():
    [problem] = validate_document("id: x\nsteps: [\n")

    assert "not valid YAML" in problem.message and problem.line is not None


def test_missing_required_fields():
    paths = {problem.path for problem in validate_document("id: x\n")}

    assert paths == {"name", "triggers", "steps"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping"),
        ("- a\n- b\n", "expected a mapping"),
        ("id: a\n---\nid: b\n", "not valid YAML"),
        ("a: !!python/object:os.system x\n", "not valid YAML"),
        ("vars: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_documents_that_cannot_be_read(text, message):
    [problem] = validate_document(text)

    assert message in problem.message


def test_alias_bombs_are_refused_without_expanding_them():
    layers = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcdefg", "bcdefgh", strict=True):
        layers.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")

    [problem] = validate_document("\n".join(layers) + "\n")

    assert "expands to over" in problem.message


def test_merge_keys_may_override_without_being_duplicates():
    text = workflow(
        "  - id: ping\n    type: http\n    url: https://example.com\n"
        "    retry: {<<: *retry, max: 3}\n",
        extra="vars:\n  retry: &retry {max: 1, backoff_ms: 250}\n",
    )

    spec = parse_workflow(text)

    assert spec.steps[0].retry == RetryPolicy(max=3, backoff_ms=250)


def test_parse_raises_with_every_problem_and_is_a_validation_error():
    with pytest.raises(SpecInvalid) as raised:
        parse_workflow("id: 1\nname: x\n")

    assert isinstance(raised.value, ValidationError) and raised.value.status_code == 422
    assert {problem.path for problem in raised.value.problems} == {"id", "triggers", "steps"}
    assert raised.value.errors[0] == {
        "path": "id",
        "message": raised.value.problems[0].message,
        "line": 1,
        "column": 1,
    }


@pytest.mark.parametrize(
    ("problem", "described"),
    [
        (
            SpecProblem("steps[2].retry.max", "too many", 7, 9),
            "steps[2].retry.max (line 7, column 9): too many",
        ),
        (SpecProblem("", "expected a mapping"), "<document>: expected a mapping"),
    ],
)
def test_describe(problem, described):
    assert problem.describe() == described


def test_the_model_has_defaults_filled_in():
    spec = parse_workflow(MINIMAL)

    [step] = spec.steps
    assert (spec.id, spec.name, spec.enabled, spec.description, spec.vars) == (
        "minimal",
        "Minimal",
        True,
        "",
        {},
    )
    assert spec.triggers == (WebhookTrigger(),)
    assert (step.when, step.timeout_seconds, step.retry, step.continue_on_error) == (
        None,
        30.0,
        RetryPolicy(),
        False,
    )
    assert step.params == {
        "method": "GET",
        "url": "https://example.com/ping",
        "headers": {},
        "query": {},
        "json": None,
        "body": None,
        "expect_status": "2xx",
        "follow_redirects": False,
    }


@pytest.mark.parametrize(
    ("step", "field", "expected"),
    [
        ("type: condition\n    expr: body.ok", "timeout_seconds", 10.0),
        ("type: approval", "timeout_seconds", 86_400.0),
        ("type: notify\n    targets: [slack.ops]\n    message: hi", "timeout_seconds", 30.0),
        ("type: http\n    url: https://x.example\n    method: post", "method", "POST"),
        ("type: http\n    url: https://x.example\n    expect_status: 201", "expect_status", [201]),
        (
            "type: http\n    url: https://x.example\n    follow_redirects: true",
            "follow_redirects",
            True,
        ),
        ("type: condition\n    expr: body.ok", "on_false", "skip"),
        ("type: approval", "required_approvals", 1),
        ("type: approval", "on_timeout", "fail"),
        ("type: approval", "approvers", []),
        ("type: notify\n    targets: [slack.ops]\n    message: hi", "severity", "info"),
        ("type: notify\n    targets: [slack.ops]\n    message: hi", "min_success", None),
    ],
)
def test_step_defaults(step, field, expected):
    spec = parse_workflow(workflow(f"  - id: s\n    {step}\n"))

    [parsed] = spec.steps
    value = parsed.timeout_seconds if field == "timeout_seconds" else parsed.params[field]
    assert value == expected


def test_retry_policy_is_read_whole():
    text = workflow(
        "  - id: s\n    type: http\n    url: https://x.example\n"
        "    retry: {max: 4, backoff_ms: 120000, jitter: false, retry_on: [503, 5XX, timeout, 503]}\n"
    )

    [step] = parse_workflow(text).steps

    # max_backoff_ms defaults to at least backoff_ms; retry_on is lower-cased, deduplicated.
    assert step.retry == RetryPolicy(4, 120_000, 120_000, False, (503, "5xx", "timeout"))


def test_kakao_targets_are_normalised():
    text = workflow(
        "  - id: s\n    type: notify\n    message: hi\n    targets:\n"
        "      - kakao: {provider: mock, template_id: t1, to: [010-1234-5678, group:oncall]}\n"
    )

    [step] = parse_workflow(text).steps

    assert step.params["targets"] == [
        {
            "kakao": {
                "mode": "alimtalk",
                "provider": "mock",
                "template_id": "t1",
                "to": ["010-1234-5678", "group:oncall"],
                "vars": {},
                "fallback": [],
                "fallback_on": ["send_error"],
            }
        }
    ]


def test_kakao_fallback_on_takes_send_error_and_delivery_failed_only():
    text = workflow(
        "  - id: s\n    type: notify\n    message: hi\n    targets:\n"
        "      - kakao: {provider: mock, template_id: t1, to: ['01012345678'],\n"
        "                fallback: [slack.ops], fallback_on: [delivery_failed, bounced]}\n"
    )

    problems = validate_document(text)

    assert [problem.path for problem in problems] == ["steps[0].targets[0].kakao.fallback_on[1]"]
    assert "send_error, delivery_failed" in problems[0].message
    [step] = parse_workflow(text.replace(", bounced", "")).steps
    assert step.params["targets"][0]["kakao"]["fallback_on"] == ["delivery_failed"]


def test_cron_and_webhook_triggers():
    triggers = (
        "  - {type: cron, expr: '*/5 * * * *'}\n"
        "  - {type: cron, expr: '0 0 2 * * *', tz: Asia/Seoul, catch_up: true}\n"
        "  - {type: webhook, path: github, auth: {type: hmac, secret: GH, header: X-Sig}}\n"
        "  - {type: webhook, dedupe_key: '{{ body.id }}', dedupe_window_seconds: 60}\n"
    )

    spec = parse_workflow(
        workflow("  - {id: s, type: condition, expr: 'true'}\n", triggers=triggers)
    )

    assert spec.cron_triggers() == (
        CronTrigger("*/5 * * * *"),
        CronTrigger("0 0 2 * * *", tz="Asia/Seoul", catch_up=True),
    )
    assert spec.webhook_trigger("github").auth.header == "X-Sig"
    assert spec.webhook_trigger("").dedupe_key == "{{ body.id }}"
    assert spec.webhook_trigger("gitlab") is None


@pytest.mark.parametrize(
    ("triggers", "path", "expected_path"),
    [
        ("  - {type: webhook, path: only}\n", "", "only"),
        ("  - {type: webhook, path: a}\n  - {type: webhook, path: b}\n", "", None),
        ("  - {type: webhook, path: a}\n  - {type: webhook}\n", "", ""),
        ("  - {type: webhook, path: a}\n  - {type: webhook, path: b}\n", "b", "b"),
        ("  - {type: cron, expr: '0 * * * *'}\n", "", None),
    ],
)
def test_webhook_trigger_selection(triggers, path, expected_path):
    spec = parse_workflow(
        workflow("  - {id: s, type: condition, expr: 'true'}\n", triggers=triggers)
    )

    hook = spec.webhook_trigger(path)

    assert (hook.path if hook else None) == expected_path


def test_steps_by_id():
    spec = parse_workflow(
        workflow("  - {id: a, type: condition, expr: 'true'}\n  - {id: b, type: approval}\n")
    )

    assert (spec.step_index("b"), spec.step("a").type) == (1, "condition")
    with pytest.raises(KeyError, match="has no step 'c'"):
        spec.step("c")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ steps.first.body.id }}", None),
        ("{{ steps['first'].status }}", None),
        ("{{ steps.second.body }}", "refers to steps.second, which is not an earlier step"),
        ("{{ steps['third'].body }}", "refers to steps.third, which is not an earlier step"),
        ("{{ steps.ghost }}", "refers to steps.ghost, which is not an earlier step"),
        ("{{ trigger.path }} {{ execution.id }} {{ secrets.TOKEN }}", None),
    ],
)
def test_templates_may_read_only_earlier_steps(template, problem):
    text = workflow(
        "  - {id: first, type: condition, expr: 'true'}\n"
        f'  - id: second\n    type: notify\n    targets: [slack.ops]\n    message: "{template}"\n'
        "  - {id: third, type: condition, expr: 'true'}\n"
    )

    problems = validate_document(text)

    assert [p.message for p in problems] == ([problem] if problem else [])
    assert all(p.path == "steps[1].message" and p.line == 10 for p in problems)


def test_alertmanager_example_reads_firing_and_resolved_payloads():
    spec = parse_workflow((EXAMPLES[0].parent / "alertmanager-disk-cleanup.yaml").read_text())
    firing = {
        "body": {
            "status": "firing",
            "groupKey": '{}:{alertname="DiskAlmostFull"}',
            "commonLabels": {"alertname": "DiskAlmostFull", "instance": "web-1"},
        }
    }
    resolved = {"body": {**firing["body"], "status": "resolved"}}
    hook = spec.webhook_trigger("alertmanager")

    assert evaluate(spec.step("firing").params["expr"], firing) is True
    assert evaluate(spec.step("firing").params["expr"], resolved) is False
    assert evaluate(hook.resolve_when, resolved) is True


def conditions(count: int) -> str:
    return "".join(
        f"  - {{id: s{index}, type: condition, expr: 'true'}}\n" for index in range(count)
    )


def test_more_steps_than_the_limit_is_one_problem_naming_it():
    [problem] = validate_document(workflow(conditions(4)), max_steps=3)

    assert problem.path == "steps" and problem.line == 9  # the first step too many
    assert "more than 3 steps" in problem.message
    assert "AISOPSFLOW_MAX_STEPS_PER_WORKFLOW" in problem.message
    assert validate_document(workflow(conditions(3)), max_steps=3) == []
    assert validate_document(workflow(conditions(501))) != []  # DEFAULT_MAX_STEPS
    assert len(parse_workflow(workflow(conditions(501)), max_steps=None).steps) == 501


def test_steps_given_by_an_alias_are_counted_too():
    text = (
        f"id: wf\nname: WF\nvars:\n  many: &many\n{conditions(4).replace('  - ', '    - ')}"
        "triggers:\n  - type: webhook\nsteps: *many\n"
    )

    [problem] = validate_document(text, max_steps=3)

    assert problem.path == "steps" and "more than 3 steps" in problem.message


def test_reading_stops_at_the_limit_so_a_huge_list_is_refused_quickly():
    text = workflow(conditions(20_000))
    started = time.monotonic()

    [problem] = validate_document(text, max_steps=500)

    assert time.monotonic() - started < 2  # reading all 20 000 steps takes tens of seconds
    assert problem.path == "steps" and problem.line == 6 + 500
