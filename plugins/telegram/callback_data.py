"""What an Approve / Reject button carries: ``callback_data`` of at most 64 bytes.

Telegram limits ``callback_data`` to 64 bytes, and Core resolves by execution id
(``ex_`` + 32 hex digits) and step id (up to 64 characters). The compact form is
stateless: ``a|<execution id's 16 bytes in base64url, 22 characters>|<step id>`` — it
fits step ids of up to 39 characters and survives plugin restarts. Longer step ids (or an
execution id of another shape) get ``a#<key>``, a hash looked up in :class:`CallbackKeys`,
which lives in the plugin process: after a restart those buttons answer "expired" and the
approval must be decided in the web UI or the API instead.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections import OrderedDict

#: Telegram's limit on ``callback_data``, in bytes.
MAX_BYTES = 64
#: How many long-form buttons the in-process map remembers before forgetting the oldest.
MAX_KEYS = 10_000
DECISIONS = {"a": "approve", "r": "reject"}
LETTERS = {decision: letter for letter, decision in DECISIONS.items()}
_EXECUTION = re.compile(r"ex_([0-9a-f]{32})")


class CallbackKeys:
    """The in-process map behind ``a#<key>`` buttons (bounded, thread-safe)."""

    def __init__(self, limit: int = MAX_KEYS) -> None:
        self.limit = limit
        self._keys: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, execution_id: str, step_id: str) -> str:
        """A 22-character key for this approval, remembered until ``limit`` newer ones."""
        digest = hashlib.sha256(f"{execution_id}\n{step_id}".encode()).digest()
        key = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        with self._lock:
            self._keys[key] = (execution_id, step_id)
            self._keys.move_to_end(key)
            while len(self._keys) > self.limit:
                self._keys.popitem(last=False)
        return key

    def lookup(self, key: str) -> tuple[str, str] | None:
        with self._lock:
            return self._keys.get(key)


def encode(decision: str, execution_id: str, step_id: str, keys: CallbackKeys) -> str:
    """The ``callback_data`` of a button deciding ``decision`` (approve or reject)."""
    letter = LETTERS[decision]
    match = _EXECUTION.fullmatch(execution_id)
    if match and "|" not in step_id:
        packed = base64.urlsafe_b64encode(bytes.fromhex(match.group(1))).decode().rstrip("=")
        data = f"{letter}|{packed}|{step_id}"
        if len(data.encode()) <= MAX_BYTES:
            return data
    return f"{letter}#{keys.remember(execution_id, step_id)}"


def decode(data: str, keys: CallbackKeys) -> tuple[str, str, str] | None:
    """(decision, execution_id, step_id) of a button, or None when unknown or forgotten."""
    decision = DECISIONS.get(data[:1])
    if decision is None:
        return None
    if data[1:2] == "#":
        found = keys.lookup(data[2:])
        return (decision, *found) if found else None
    packed, sep, step_id = data[2:].partition("|")
    if data[1:2] != "|" or not sep or not step_id or len(packed) != 22:
        return None
    try:
        raw = base64.urlsafe_b64decode(packed + "==")
    except ValueError:
        return None
    if len(raw) != 16:
        return None
    return decision, f"ex_{raw.hex()}", step_id
