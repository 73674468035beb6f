"""Masks secret-looking values before anything is stored, logged or returned."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

#: Keys whose values are never kept as given.
SENSITIVE_KEY = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key|signature)",
    re.IGNORECASE,
)


def redact(value: Any, *, known_secrets: tuple[str, ...] = ()) -> Any:
    """A copy of ``value`` with sensitive keys masked and known secret strings replaced.

    ``known_secrets`` are plaintext secret values (e.g. the ones a step read) that
    must not survive anywhere in the structure, whatever key holds them.
    """
    if isinstance(value, dict):
        return {
            key: MASK
            if isinstance(key, str) and SENSITIVE_KEY.search(key)
            else redact(item, known_secrets=known_secrets)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item, known_secrets=known_secrets) for item in value]
    if isinstance(value, str):
        for secret in known_secrets:
            if secret and len(secret) >= 4 and secret in value:
                value = value.replace(secret, MASK)
        return value
    return value
