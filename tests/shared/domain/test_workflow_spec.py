"""Workflow documents: every problem reported at once, with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.workflow_spec import validate_document

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_examples_validate(path):
    assert validate_document(path.read_text()) == []


def test_examples_exist():
    assert len(EXAMPLES) >= 3


def test_problems_are_reported_together_with_line_and_column():
    text = """\
id: disk
name: 3
triggers:
  - type: pager
steps:
  - id: a
    type: http
  - id: a
    type: teleport
colour: blue
"""

    problems = {problem.path: problem for problem in validate_document(text)}

    assert set(problems) == {"name", "triggers[0].type", "steps[1].id", "steps[1].type", "colour"}
    assert (problems["name"].line, problems["name"].column) == (2, 1)
    assert problems["steps[1].id"].line == 8 and "duplicate" in problems["steps[1].id"].message
    assert problems["colour"].message == "unknown field"


def test_broken_yaml_names_the_place():
    [problem] = validate_document("id: x\nsteps: [\n")

    assert "not valid YAML" in problem.message and problem.line is not None


def test_missing_required_fields():
    paths = {problem.path for problem in validate_document("id: x\n")}

    assert paths == {"name", "triggers", "steps"}
