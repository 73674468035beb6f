"""Hypothesis over the workflow YAML reader: whatever the text, only the validation error type.

``validate_document`` returns problems and never raises; ``parse_workflow`` raises
:class:`SpecInvalid` and nothing else. Three sources of text: anything at all, YAML
built from the constructs that break loaders (anchors, merges, tags, odd scalars), and
valid workflows with arbitrary values put where the fields go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.workflow_spec import SpecInvalid, parse_workflow, validate_document

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))

#: Bounded and repeatable: CI runs the same examples every time.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

#: Pieces of YAML that have broken loaders: anchors and merges, tags, escapes, numbers
#: past Python's digit limit, impossible dates, base-60, deep brackets.
FRAGMENTS = [
    "\n", "\n  ", "\n    ", "- ", ": ", "? ", ", ", "[", "]", "{", "}", "&a ", "*a", "&b ", "*b",
    "<<: ", "<<: [*a, *b]", "!!int ", "!!float ", "!!str ", "!!binary ", "!!set ", "!!omap ",
    "!!timestamp ", "!!python/object:os.system ", "!custom ", '"\\0"', '"\\ud800"', '"\\x00"',
    "'quoted'", "|\n  text", ">\n  folded", "~", "null", "true", ".inf", "-.nan", "0x",
    "0o17", "0b101", "1:2:3", "2024-13-45", "2024-02-30 25:61:61", "1" * 4301, "9" * 40,
    "-", "---", "...", "%YAML 1.1\n", "#", "id", "name", "steps", "triggers", "vars",
    "type", "webhook", "cron", "http", "url", "{{ body.x }}", "x", "1", "[" * 70, "{a: " * 70,
]  # fmt: skip

yaml_like = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)

#: JSON-like values with text no database stores and numbers no int-to-str prints.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**4290, max_value=10**4310)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["\x00", "a\x00b", "{{", "{{ steps.x }}", "2024-13-45", "*a"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def check_text(text: str) -> None:
    """The reader's whole promise about ``text``."""
    problems = validate_document(text)
    assert isinstance(problems, list)
    try:
        parse_workflow(text)
    except SpecInvalid as invalid:
        assert invalid.problems == problems
    else:
        assert problems == []


@FUZZ
@given(st.text(max_size=300))
def test_any_text_at_all(text: str) -> None:
    check_text(text)


@FUZZ
@given(yaml_like)
def test_yaml_built_from_troublesome_constructs(text: str) -> None:
    check_text(text)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_arbitrary_values_in_every_field_of_the_examples(example: Path) -> None:
    document = yaml.safe_load(example.read_text(encoding="utf-8"))
    places = list(_places(document))

    @FUZZ
    @given(st.sampled_from(places), values)
    def put_value_somewhere(place: tuple[Any, ...], value: Any) -> None:
        changed = _replace(document, place, value)
        try:
            text = yaml.safe_dump(changed, allow_unicode=True)
        except (yaml.YAMLError, ValueError):  # a value PyYAML itself will not write
            return
        check_text(text)

    put_value_somewhere()


def _places(value: Any, path: tuple[Any, ...] = ()) -> Any:
    """Every path in ``value`` (dict keys and list indexes), the root included."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(item, (*path, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with ``new`` at ``path``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy
