"""What request data may hold: text the database can store, JSON nested only so deep.

PostgreSQL refuses NUL (``\\x00``) in text, and no driver can encode an unpaired UTF-16
surrogate; code that walks a value recurses once per level of nesting. All three are
refused once, where data comes in, naming the place, rather than failing deep inside.
"""

from __future__ import annotations

import re
from typing import Any

#: Deepest nesting of JSON arrays and objects accepted in a request body.
MAX_JSON_DEPTH = 64

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_character(text: str) -> str | None:
    """``a NUL character (\\u0000)`` or ``an unpaired surrogate (\\udXXX)`` in ``text``; else None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    code = ord(found.group())
    what = "a NUL character" if code == 0 else "an unpaired surrogate"
    return f"{what} (\\u{code:04x}), which cannot be stored"


def string_problem(text: str, where: str) -> str | None:
    """``where contains ...`` when ``text`` holds a character no database can store."""
    found = unstorable_character(text)
    return f"{where} contains {found}" if found else None


def text_problem(text: str, where: str) -> str | None:
    """Like :func:`string_problem`, naming the line and column of the character."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    index = found.start()
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return string_problem(found.group(), f"{where} (line {line}, column {column})")


def _child_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.fullmatch(key) and len(key) <= 40:
        return f"{path}.{key}"
    return f"{path}[{key[:40]!r}]"


def json_problem(value: Any, where: str = "body") -> str | None:
    """What is wrong with decoded JSON ``value``, naming the place; None when nothing is.

    Refused: nesting deeper than :data:`MAX_JSON_DEPTH`, and a NUL character or an
    unpaired surrogate in any string or object key. ``where`` names ``value`` itself;
    places inside it read ``body.items[2].name``.
    """
    if isinstance(value, str):
        return string_problem(value, where)
    if not isinstance(value, (dict, list)):
        return None
    pending: list[tuple[Any, str, int]] = [(value, where, 1)]
    while pending:
        current, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return f"{path} is nested over {MAX_JSON_DEPTH} levels deep"
        items = current.items() if isinstance(current, dict) else enumerate(current)
        for key, item in items:
            if isinstance(key, str) and (found := unstorable_character(key)):
                return f"{path} has a key {key[:40]!r} with {found}"
            if isinstance(item, str):
                if found := unstorable_character(item):
                    return f"{_child_path(path, key)} contains {found}"
            elif isinstance(item, (dict, list)):
                pending.append((item, _child_path(path, key), depth + 1))
    return None
