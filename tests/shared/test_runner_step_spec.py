"""The `runner` step's YAML and its retry rule: pure tables, no fixtures."""

from __future__ import annotations

import pytest

from shared.domain.backoff import is_retryable_runner
from shared.domain.engine_rules import failure_outcome
from shared.domain.workflow_spec import parse_workflow, validate_document


def document(step: str) -> str:
    return f"""
id: w
name: w
triggers: [{{type: webhook}}]
steps:
  - id: r
    type: runner
{step}
"""


def problems(step: str) -> list[str]:
    return [f"{p.path}: {p.message}" for p in validate_document(document(step))]


def test_a_full_step_reads_with_defaults():
    step = parse_workflow(
        document(
            """    runner: {labels: {role: db}}
    command: [pg_dump, "{{ body.db }}"]
    env: {PGPASSWORD: "{{ secrets.PG }}"}
    cwd: /tmp
    retry_on: [3, lost]
    retry: {max: 2}"""
        )
    ).steps[0]

    assert step.timeout_seconds == 300
    assert step.retry.retry_on == (3, "lost") and step.retry.max == 2
    assert step.params["command"] == ["pg_dump", "{{ body.db }}"]
    assert step.params["expect_exit"] == [0] and step.params["shell"] is None
    assert "retry_on" not in step.params


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("    command: [x]", "r.runner: required field is missing"),
        (
            "    runner: {id: rn_1, labels: {a: b}}\n    command: [x]",
            "r.runner: expected exactly one of id or labels",
        ),
        (
            "    runner: {id: rn_1}\n    command: [x]\n    script: y\n    shell: sh",
            "r.command: expected exactly one of command or script",
        ),
        ("    runner: {id: rn_1}\n    script: y", "r.shell: required with script: one of bash, sh"),
        ("    runner: {id: rn_1}\n    command: []", "r.command: expected at least one item"),
        (
            "    runner: {id: rn_1}\n    command: [1]",
            "r.command[0]: expected a string, got an integer",
        ),
        ("    runner: {id: rn_1}\n    command: x", "r.command: expected a list, got a string"),
        (
            "    runner: {id: rn_1}\n    command: [x]\n    env: {A: 1}",
            "r.env.A: expected a string, got an integer",
        ),
        (
            "    runner: {id: rn_1}\n    command: [x]\n    env: {'1A': x}",
            "r.env['1A']: '1A' is not a valid environment name",
        ),
        (
            "    runner: {id: rn_1}\n    command: [x]\n    expect_exit: [256]",
            "r.expect_exit: expected an exit code (0-255) or a list of them, got [256]",
        ),
        (
            "    runner: {id: rn_1}\n    command: [x]\n    shell: zsh",
            "r.shell: expected one of bash, sh, got 'zsh'",
        ),
        (
            "    runner: {id: rn_1}\n    command: [x]\n    retry: {retry_on: [5xx]}",
            "r.retry.retry_on[0]: expected an exit code (0-255), 'no_runner', 'lost' or "
            "'timeout', got '5xx'",
        ),
        (
            "    runner: {id: rn_1}\n    command: [x]\n    retry_on: [1]\n    retry: {retry_on: [2]}",
            "r.retry_on: retry_on is also set under retry; keep one",
        ),
    ],
)
def test_problems_name_the_field(step, expected):
    assert expected in [found.replace("steps[0].", "r.") for found in problems(step)]


def test_http_steps_keep_their_own_retry_vocabulary():
    found = validate_document(
        """
id: w
name: w
triggers: [{type: webhook}]
steps:
  - id: h
    type: http
    url: https://example.test
    retry: {retry_on: [lost]}
"""
    )
    assert any("'5xx'" in p.message for p in found)


@pytest.mark.parametrize(
    ("outcome", "retry_on", "retries"),
    [
        ("no_runner", (), True),
        ("lost", (), True),
        ("timeout", (), True),
        (3, (), False),
        (3, (3,), True),
        ("lost", (3,), False),
        (0, (1, 2), False),
    ],
)
def test_runner_retry_rule(outcome, retry_on, retries):
    assert is_retryable_runner(outcome, retry_on) is retries


def test_the_shared_failure_rule_retries_while_attempts_last():
    step = parse_workflow(
        document("    runner: {id: rn_1}\n    command: [x]\n    retry: {max: 1, jitter: false}")
    ).steps[0]

    first = failure_outcome(step, attempt=1, max_attempts=2, message="lost", reason="lost")
    last = failure_outcome(step, attempt=2, max_attempts=2, message="lost", reason="lost")
    exit_code = failure_outcome(step, attempt=1, max_attempts=2, message="exit 3", reason=3)

    assert first.status == "retry" and first.retry_delay_ms == 1000
    assert last.status == "failed" and last.error == "lost (after 2 attempt(s))"
    assert exit_code.status == "failed"
