"""The workflow YAML loader: any text is a document or a YAML error with a place, quickly."""

from __future__ import annotations

import time

import pytest

from shared.domain.workflow_spec import SpecInvalid, parse_workflow, validate_document
from shared.domain.workflow_yaml import MAX_DOCUMENT_VALUES, MAX_INT_DIGITS, MAX_NESTING

HEAD = "id: x\nname: y\ntriggers: [{type: webhook}]\nsteps: [{id: s, type: http, url: https://x.test}]\n"


def only_problem(text: str):
    problems = validate_document(text)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1" * (MAX_INT_DIGITS + 1), f"an integer has over {MAX_INT_DIGITS} digits"),
        ("-" + "9" * (MAX_INT_DIGITS + 1), f"an integer has over {MAX_INT_DIGITS} digits"),
        # Hexadecimal has no digit limit in Python, but the number could never be printed.
        ("0x" + "f" * 4000, f"an integer has over {MAX_INT_DIGITS} digits"),
        # YAML 1.1 base 60: computing 1:1:1:... takes quadratic time; refused before.
        ("1" + ":1" * 20_000, f"an integer has over {MAX_INT_DIGITS} digits"),
        ("2024-13-45", "month must be in 1..12"),
        # Found by tests/fuzz: PyYAML's constructor raised AttributeError on this.
        ("!!timestamp nope", "cannot read this value as tag:yaml.org,2002:timestamp"),
    ],
    ids=["4301-digits", "negative", "hex", "sexagesimal", "impossible-date", "explicit-tag"],
)
def test_values_python_cannot_build_are_yaml_errors_at_their_place(value, message):
    problem = only_problem(HEAD + f"vars:\n  v: {value}\n")

    assert message in problem.message and "not valid YAML" in problem.message
    assert (problem.line, problem.column) == (6, 6)


def test_the_longest_integer_is_still_read():
    spec = parse_workflow(HEAD + f"vars:\n  v: {'1' * MAX_INT_DIGITS}\n")

    assert spec.vars["v"] == int("1" * MAX_INT_DIGITS)


@pytest.mark.parametrize(
    ("text", "path", "what"),
    [
        (HEAD + 'vars:\n  v: "a\\0b"\n', "vars.v", "a NUL character"),
        (HEAD + 'vars:\n  v: ["ok", "a\\x00"]\n', "vars.v[1]", "a NUL character"),
        (HEAD + 'vars:\n  "k\\0": 1\n', "vars['k\\x00']", "a NUL character"),
        (HEAD.replace("name: y", 'name: "\\ud800"'), "name", "an unpaired surrogate"),
    ],
    ids=["value", "list-item", "key", "surrogate"],
)
def test_text_no_database_can_store_is_a_problem_at_its_place(text, path, what):
    problem = only_problem(text)

    assert problem.path == path and what in problem.message and problem.line is not None


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "- " * 100_000 + "x\n",
        "a: " + "{b: " * 100_000,
        "".join(" " * depth + f"k{depth}:\n" for depth in range(MAX_NESTING + 5)),
    ],
    ids=["flow-lists", "block-lists", "flow-maps", "indented-maps"],
)
def test_deep_nesting_is_refused_at_the_limit(text):
    problem = only_problem(text)

    assert f"nested too deeply (over {MAX_NESTING} levels)" in problem.message


def test_merge_key_bombs_stop_at_the_value_budget():
    # Each "{<<: *a}" copies all of a's entries: 30 lines would cost 30 x 5,000 entries.
    entries = ", ".join(f"k{i}: 1" for i in range(5000))
    uses = ", ".join(["{<<: *a}"] * 30) + ", {<<: [" + ", ".join(["*a"] * 30) + "]}"
    started = time.monotonic()

    problem = only_problem(f"a: &a {{{entries}}}\nb: [{uses}]\n")

    # Refused while reading (the loader's budget), not after building every copy.
    assert f"expands to over {MAX_DOCUMENT_VALUES} values" in problem.message
    assert "<< merge keys" in problem.message and problem.line is not None
    assert time.monotonic() - started < 10


def test_parse_raises_only_the_validation_error():
    with pytest.raises(SpecInvalid) as raised:
        parse_workflow(HEAD + "vars:\n  v: " + "1" * (MAX_INT_DIGITS + 1) + "\n")

    assert raised.value.errors[0]["line"] == 6
