"""Workflow YAML: parse and check the top-level shape, reporting every problem with its place.

The engine issue extends this into the full typed model; the CLI's
``workflow validate`` and the API share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

REQUIRED_FIELDS: dict[str, type] = {"id": str, "name": str, "triggers": list, "steps": list}
OPTIONAL_FIELDS: dict[str, type] = {"enabled": bool, "vars": dict, "description": str}
STEP_TYPES = ("http", "notify", "approval", "condition")
TRIGGER_TYPES = ("webhook", "cron")


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a workflow document."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def describe(self) -> str:
        """``path (line L, column C): message``."""
        where = f" (line {self.line}, column {self.column})" if self.line else ""
        return f"{self.path or '<document>'}{where}: {self.message}"


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers where each mapping key was written."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__lines__"] = {
        key_node.value: (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        for key_node, _ in node.value
        if isinstance(key_node, yaml.ScalarNode)
    }
    mapping["__line__"] = (node.start_mark.line + 1, node.start_mark.column + 1)
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _place(mapping: dict[str, Any], key: str | None = None) -> tuple[int | None, int | None]:
    if key is not None and key in mapping.get("__lines__", {}):
        return mapping["__lines__"][key]
    return mapping.get("__line__", (None, None))


def _type_name(kind: type) -> str:
    return {str: "a string", list: "a list", dict: "a mapping", bool: "true or false"}[kind]


def validate_document(text: str) -> list[SpecProblem]:
    """Every problem found in a workflow YAML document; empty when it is valid."""
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return [
            SpecProblem(
                "",
                f"not valid YAML: {getattr(error, 'problem', None) or error}",
                mark.line + 1 if mark else None,
                mark.column + 1 if mark else None,
            )
        ]
    if not isinstance(document, dict):
        return [SpecProblem("", "expected a mapping with id, name, triggers and steps", 1, 1)]

    problems: list[SpecProblem] = []
    known = {**REQUIRED_FIELDS, **OPTIONAL_FIELDS}
    for key in document.keys() - {"__lines__", "__line__"} - known.keys():
        problems.append(SpecProblem(str(key), "unknown field", *_place(document, key)))
    for key, kind in known.items():
        if key not in document:
            if key in REQUIRED_FIELDS:
                problems.append(SpecProblem(key, "required field is missing", *_place(document)))
            continue
        if not isinstance(document[key], kind):
            problems.append(
                SpecProblem(key, f"expected {_type_name(kind)}", *_place(document, key))
            )

    problems += _check_items(document, "triggers", "type", TRIGGER_TYPES)
    problems += _check_items(document, "steps", "type", STEP_TYPES)
    seen: set[str] = set()
    for index, step in enumerate(document.get("steps") or []):
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            if step["id"] in seen:
                problems.append(
                    SpecProblem(
                        f"steps[{index}].id",
                        f"duplicate step id {step['id']!r}",
                        *_place(step, "id"),
                    )
                )
            seen.add(step["id"])
        elif isinstance(step, dict):
            problems.append(
                SpecProblem(f"steps[{index}].id", "required field is missing", *_place(step))
            )
    return problems


def _check_items(
    document: dict[str, Any], field: str, type_key: str, allowed: tuple[str, ...]
) -> list[SpecProblem]:
    items = document.get(field)
    if not isinstance(items, list):
        return []
    problems = []
    for index, item in enumerate(items):
        path = f"{field}[{index}]"
        if not isinstance(item, dict):
            problems.append(SpecProblem(path, "expected a mapping", *_place(document, field)))
        elif item.get(type_key) not in allowed:
            problems.append(
                SpecProblem(
                    f"{path}.{type_key}",
                    f"expected one of {', '.join(allowed)}, got {item.get(type_key)!r}",
                    *_place(item, type_key),
                )
            )
    return problems
