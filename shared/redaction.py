"""Masks secret-looking values before anything is stored, logged or returned.

Two things are masked. Values under sensitive keys (``password``, ``token``, ...)
are replaced whatever they are. Known secret values (the tenant's secrets a step
could read) are replaced wherever they appear in text, together with the common
ways a template or a remote server transforms them:

- any case (``upper``, ``lower``, ``title``, swapped), and the value reversed;
- a prefix or suffix of at least :data:`MIN_FRAGMENT_CHARS` characters
  (``secrets.KEY[:6]``, ``secrets.KEY[-8:]``), of the value or of it reversed;
- base64 (standard and URL-safe, padded or not, alone or inside a longer base64
  text such as a Basic credential), hex;
- URL-encoded (``urlencode``, ``quote``, ``quote_plus``), HTML-escaped, JSON-escaped;
- its characters joined by one separator of up to 4 non-alphanumeric characters
  (``secrets.KEY | join('-')``, a printed list).

A secret shorter than :data:`MIN_SECRET_CHARS` is not masked, nor is a fragment
that is a plain word of the secret (``relay`` of ``relay-credential-1``): either would
mask far too much ordinary text. Whatever a workflow may compute from a secret beyond these forms (a middle
slice, a hash, another encoding) is not recognised: anyone who may write a workflow
may use its tenant's secrets (see docs/security.md).
"""

from __future__ import annotations

import base64
import functools
import html
import itertools
import json
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

#: Keys whose values are never kept as given.
SENSITIVE_KEY = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key|signature)",
    re.IGNORECASE,
)
#: Shortest secret masked, in characters.
MIN_SECRET_CHARS = 4
#: Shortest prefix or suffix of a secret masked on its own, in characters.
MIN_FRAGMENT_CHARS = 4
#: Fewest different characters in a fragment masked on its own (see ``_telling``).
MIN_FRAGMENT_DISTINCT = 3
#: Longest secret whose separator-joined form is matched, in characters.
MAX_JOINED_CHARS = 512
#: What a secret's characters may be joined with: 1 to 4 non-alphanumeric characters.
_SEPARATOR = r"[^0-9A-Za-z]{1,4}"
# What requests leaves unquoted in a URL it sends (requests.utils.requote_uri).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
_MARKUP_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&#39;", '"': "&#34;"}
)
# What Jinja's ``tojson`` escapes on top of JSON.
_HTML_SAFE_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"})


def _base64_forms(data: bytes) -> set[str]:
    """``data`` in base64, alone and as it shows inside any longer base64 text."""
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode("ascii")
        forms.update((whole, whole.rstrip("=")))
        # Inside a longer text, ``data`` starts at byte offset 0, 1 or 2 of a 3-byte
        # group; keep the characters that depend on ``data``'s bytes alone.
        for offset in range(3):
            text = encode(b"\0" * offset + data).decode("ascii")
            core = text[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6]
            if len(core) >= MIN_FRAGMENT_CHARS:
                forms.add(core)
    return forms


def secret_forms(secret: str) -> frozenset[str]:
    """The literal texts that give ``secret`` away: itself and its encodings.

    Case changes, reversal and prefix/suffix fragments are matched on top of these
    (see :class:`SecretMasker`); this is the list of whole forms.
    """
    forms = {secret, secret.strip()}
    for value in (secret, secret.strip()):
        data = value.encode("utf-8")
        forms |= _base64_forms(data)
        forms.add(data.hex())
        forms.update(
            quote(value, safe=safe) for safe in ("", "/", _URL_SAFE)
        )  # urlencode quotes with safe="/"
        forms.add(quote_plus(value))
        forms.add(quote(value, safe="/").replace("%20", "+"))
        forms.add(html.escape(value))
        forms.add(value.translate(_MARKUP_ESCAPES))  # Jinja's ``e`` (markupsafe)
        escaped = json.dumps(value)[1:-1]
        forms.add(escaped)
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        forms.add(escaped.translate(_HTML_SAFE_JSON))  # Jinja's tojson
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_CHARS)


def _folded(text: str) -> str:
    """``text`` in lower case when that keeps its length (what the fast pattern matches)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text


def _trie_pattern(texts: Iterable[str], tails: Iterable[tuple[str, str]] = ()) -> str:
    """One regular expression matching any of ``texts``, longest first, shaped as a trie.

    ``tails`` are (literal, regex) pairs: the literal, then the regex. A trie lets
    the regex engine drop a branch at its first character instead of trying hundreds
    of alternatives at every position of a long text.
    """
    entries = [(text, None) for text in texts if text] + [(text, tail) for text, tail in tails]
    return _branches(entries)


def _branches(entries: list[tuple[str, str | None]]) -> str:
    """The pattern of (literal, tail regex or None) entries: literals sharing a prefix share a branch.

    Recursion goes one level per point where the literals part, not per character.
    """
    branches = [tail for text, tail in entries if not text and tail is not None]
    optional = any(not text and tail is None for text, tail in entries)
    rest = sorted((entry for entry in entries if entry[0]), key=lambda entry: entry[0])
    for _, group in itertools.groupby(rest, key=lambda entry: entry[0][0]):
        members = list(group)
        prefix = os.path.commonprefix([text for text, _ in members])
        continued = _branches([(text[len(prefix) :], tail) for text, tail in members])
        branches.append(re.escape(prefix) + continued)
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if optional else body  # greedy: the longer text wins


def _joined_tail(secret: str, group: str) -> str:
    """After ``secret``'s first character: its other characters, one repeated separator between each."""
    rest = f"(?P={group})".join(re.escape(char) for char in secret[1:])
    return f"(?P<{group}>{_SEPARATOR})" + rest


def _same(left: str, right: str) -> bool:
    return left == right or left.casefold() == right.casefold()


def _distinct(text: str) -> int:
    return len(set(text.casefold()))


class SecretMasker:
    """Masks one set of secrets in text; :func:`secret_masker` builds and caches it.

    One regular expression finds, in one pass, every whole form (encodings, joined
    characters) and every *anchor*: the first and last MIN_FRAGMENT_CHARS characters
    of each secret and of it reversed. From an anchor the match is extended, character
    by character, to the longest prefix (or suffix) of that secret the text holds.
    The text is lower-cased first and matched case-sensitively, which is several
    times faster than ``re.IGNORECASE``; text whose length lower-casing changes is
    matched with ``re.IGNORECASE`` instead.
    """

    def __init__(self, secrets: list[str]) -> None:
        forms: set[str] = set()
        anchors: set[str] = set()
        tails: list[tuple[str, str]] = []
        ends: dict[str, list[tuple[str, bool]]] = {}
        for secret in secrets:
            forms |= {_folded(form) for form in secret_forms(secret)}
            for base in sorted({secret, secret[::-1], secret.strip(), secret.strip()[::-1]}):
                if len(base) < MIN_SECRET_CHARS:
                    continue
                for anchor, is_head in (
                    (base[:MIN_FRAGMENT_CHARS], True),
                    (base[-MIN_FRAGMENT_CHARS:], False),
                ):
                    ends.setdefault(anchor.casefold(), []).append((base, is_head))
                    anchors.add(_folded(anchor))
                if len(base) <= MAX_JOINED_CHARS:
                    folded = _folded(base)
                    tails.append((folded[0], _joined_tail(folded, f"j{len(tails)}")))
        self._whole = frozenset(forms)
        self._ends = {anchor: tuple(dict.fromkeys(bases)) for anchor, bases in ends.items()}
        self._source = _trie_pattern(sorted(forms | anchors), tails)
        self._pattern = re.compile(self._source)
        self._any_case: re.Pattern[str] | None = None

    def mask(self, text: str) -> str:
        """``text`` with every recognised form of the secrets replaced by MASK."""
        spans = self._spans(text)
        if not spans:
            return text
        parts, done = [], 0
        for start, end in _merged(spans):
            parts.extend((text[done:start], MASK))
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        subject = text.lower()
        pattern = self._pattern
        if len(subject) != len(text):  # e.g. "İ": match the text itself, in any case
            subject = text
            if self._any_case is None:
                self._any_case = re.compile(self._source, re.IGNORECASE)
            pattern = self._any_case
        spans = []
        match = pattern.search(subject)
        while match is not None:
            start, end = match.span()
            if end - start > MIN_FRAGMENT_CHARS or _folded(match.group()) in self._whole:
                spans.append((start, end))
            # A whole form may start where a longer prefix of a secret does: extend anyway.
            anchor = subject[start : start + MIN_FRAGMENT_CHARS].casefold()
            for base, is_head in self._ends.get(anchor, ()):
                span = (_head_span if is_head else _tail_span)(subject, start, base)
                if _telling(span[1] - span[0], base, is_head):
                    spans.append(span)
            match = pattern.search(subject, start + 1)  # anchors and forms may overlap
        return spans


def _telling(length: int, base: str, is_head: bool) -> bool:
    """Whether the prefix (``is_head``) or suffix of ``base`` this long gives it away enough to mask.

    Not on its own: a run of few different characters (``-----`` of a PEM key), nor
    a leading or trailing word of the secret in plain lower case, upper case or
    digits (``relay`` of ``relay-credential-1``, ``2024`` of ``key-2024``): masking
    those would mask that word in every text. ``Zm=Q`` of ``...+Zm=Q`` is masked.
    """
    if length == len(base):
        return True
    fragment = base[:length] if is_head else base[-length:]
    if _distinct(fragment) < MIN_FRAGMENT_DISTINCT:
        return False
    cut = base[length - 1 : length + 1] if is_head else base[-length - 1 : -length + 1]
    if cut.isalnum():
        return True  # cut inside a word of the secret
    kept = [char for char in fragment if char.isalnum()]
    plain = (
        all(char.isdigit() for char in kept)
        or all(char.isalpha() and char.islower() for char in kept)
        or all(char.isalpha() and char.isupper() for char in kept)
    )
    return not plain


def _head_span(text: str, start: int, base: str) -> tuple[int, int]:
    """The longest prefix of ``base`` at ``start`` (its first MIN_FRAGMENT_CHARS match already)."""
    length = MIN_FRAGMENT_CHARS
    while (
        length < len(base)
        and start + length < len(text)
        and _same(text[start + length], base[length])
    ):
        length += 1
    return start, start + length


def _tail_span(text: str, start: int, base: str) -> tuple[int, int]:
    """The longest suffix of ``base`` ending with its last MIN_FRAGMENT_CHARS, found at ``start``."""
    end = start + MIN_FRAGMENT_CHARS
    length = MIN_FRAGMENT_CHARS
    while (
        length < len(base) and end - length > 0 and _same(text[end - length - 1], base[-length - 1])
    ):
        length += 1
    return end - length, end


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` sorted, overlapping or touching ones joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@functools.lru_cache(maxsize=256)
def secret_masker(known_secrets: tuple[str, ...]) -> SecretMasker | None:
    """The masker of ``known_secrets`` (cached per tuple); None when none is long enough."""
    secrets = sorted({secret for secret in known_secrets if len(secret) >= MIN_SECRET_CHARS})
    return SecretMasker(secrets) if secrets else None


def mask_secrets(text: str, known_secrets: tuple[str, ...]) -> str:
    """``text`` with the known secrets, and their common transformations, replaced by MASK."""
    masker = secret_masker(tuple(known_secrets))
    return masker.mask(text) if masker is not None and text else text


def redact(value: Any, *, known_secrets: tuple[str, ...] = ()) -> Any:
    """A copy of ``value`` with sensitive keys masked and known secret strings replaced.

    ``known_secrets`` are plaintext secret values (e.g. the ones a step read) that
    must not survive anywhere in the structure, whatever key holds them, in any of
    the forms listed in this module's docstring.
    """
    return _redacted(value, secret_masker(tuple(known_secrets)))


def _redacted(value: Any, masker: SecretMasker | None) -> Any:
    if isinstance(value, dict):
        return {
            (masker.mask(key) if masker and isinstance(key, str) else key): MASK
            if isinstance(key, str) and SENSITIVE_KEY.search(key)
            else _redacted(item, masker)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redacted(item, masker) for item in value]
    if isinstance(value, str) and masker is not None:
        return masker.mask(value)
    return value
