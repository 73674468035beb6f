"""The safe YAML loader workflows are read with: places kept, and every cost bounded.

Whatever the text, :func:`load_yaml` returns the document or raises ``yaml.YAMLError``
with a place: aliases and merge keys cannot expand it past :data:`MAX_DOCUMENT_VALUES`,
integers are refused past :data:`MAX_INT_DIGITS` digits (Python refuses to print longer
ones), nesting stops at :data:`MAX_NESTING` levels, and a value no constructor can build
(``2024-13-45``) is an error at its place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

#: Most values a document may expand to (YAML aliases can multiply a small file).
MAX_DOCUMENT_VALUES = 100_000
#: Deepest nesting of mappings and lists in a document.
MAX_NESTING = 64
#: Longest integer a document may hold, in decimal digits (Python's own limit for int <-> str).
MAX_INT_DIGITS = 4300
_INT_CEILING = 10**MAX_INT_DIGITS


class YamlMap(dict):
    """A YAML mapping that remembers where it and each of its keys were written."""

    mark: tuple[int, int]
    key_marks: dict[Any, tuple[int, int]]
    duplicates: list[tuple[Any, tuple[int, int]]]


class YamlSeq(list):
    """A YAML list that remembers where it and each item were written."""

    mark: tuple[int, int]
    item_marks: list[tuple[int, int]]


def mark_of(node: yaml.Node) -> tuple[int, int]:
    """(line, column) of ``node``, counted from 1."""
    return node.start_mark.line + 1, node.start_mark.column + 1


class WorkflowLoader(yaml.SafeLoader):
    """A safe loader building YamlMap and YamlSeq, within a budget of mapping entries."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.entries_read = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # PyYAML composes (and later constructs) one Python frame per level; a bound here
        # keeps a deep document a YAML error instead of a RecursionError anywhere after.
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise ComposerError(
                    None,
                    None,
                    f"the document is nested too deeply (over {MAX_NESTING} levels)",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # PyYAML flattens a merge source (<<: *x) on every use and copies its entries, so
        # a few lines of aliases cost without limit; charge each use before it is copied.
        self.entries_read += len(node.value)
        if self.entries_read > MAX_DOCUMENT_VALUES:
            raise ConstructorError(
                None,
                None,
                f"the document expands to over {MAX_DOCUMENT_VALUES} values "
                "(aliases and << merge keys repeat what they refer to)",
                node.start_mark,
            )
        super().flatten_mapping(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError) as error:  # e.g. a date 2024-13-45
            problem = f"cannot read this value: {error}"
        # PyYAML's constructors assume a value fits its explicit tag ("!!timestamp x" is an
        # AttributeError inside PyYAML): whatever they raise, the text is at fault.
        except Exception:  # noqa: BLE001
            problem = f"cannot read this value as {node.tag}"
        raise ConstructorError(None, None, problem, node.start_mark)


def _construct_map(loader: WorkflowLoader, node: yaml.MappingNode) -> YamlMap:
    written = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    merged = len(node.value) - written  # merged keys come first; written keys override them
    result = YamlMap()
    result.mark, result.key_marks, result.duplicates = mark_of(node), {}, []
    written_keys: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        if index >= merged:
            if key in written_keys:
                result.duplicates.append((key, mark_of(key_node)))
            written_keys.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_marks[key] = mark_of(key_node)
    return result


def _construct_seq(loader: WorkflowLoader, node: yaml.SequenceNode) -> YamlSeq:
    result = YamlSeq(loader.construct_object(child, deep=True) for child in node.value)
    result.mark, result.item_marks = mark_of(node), [mark_of(child) for child in node.value]
    return result


def _construct_int(loader: WorkflowLoader, node: yaml.ScalarNode) -> int:
    # Length is checked before converting: sexagesimal 1:2:3:... takes quadratic time.
    value: int | None = None
    if len(str(node.value)) <= MAX_INT_DIGITS + 100:
        try:
            value = loader.construct_yaml_int(node)
        except ValueError:  # Python's own limit on decimal digits
            value = None
    if value is None or abs(value) >= _INT_CEILING:
        raise ConstructorError(
            None, None, f"an integer has over {MAX_INT_DIGITS} digits", node.start_mark
        )
    return value


WorkflowLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
WorkflowLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)
WorkflowLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(text: str, make_loader: Callable[[str], WorkflowLoader] = WorkflowLoader) -> Any:
    """The single document in ``text``; ``yaml.YAMLError`` (with a place) when it cannot be read.

    ``make_loader`` builds the loader, for a subclass that stops earlier on its own terms.
    """
    loader = make_loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
