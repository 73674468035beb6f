"""The body of ``POST /kakao/alimtalk/send`` (SPEC §6.4), checked field by field. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.errors import BadRequest

#: A phone number as Core sends it after expanding groups: digits, an optional leading '+'.
PHONE = re.compile(r"\+?[0-9]{7,15}")
#: Most recipients one send may carry (AlimTalk relays cap a batch around this).
MAX_RECIPIENTS = 1000


@dataclass(frozen=True)
class AlimTalkRequest:
    """One send: a template with its variables, to one or more phone numbers."""

    tenant_id: str
    provider_id: str
    template_id: str
    to: tuple[str, ...]
    vars: dict[str, Any]
    trace_id: str


def _bad(field: str, message: str) -> BadRequest:
    return BadRequest(f"{field!r} {message}", errors={"field": field})


def _text(body: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = body.get(field)
    if not isinstance(value, str) or (required and not value.strip()):
        kind = "a non-empty string" if required else "a string"
        raise _bad(field, f"must be {kind}, got {value!r}")
    return value


def parse_send_request(body: Any) -> AlimTalkRequest:
    """The send ``body`` as an :class:`AlimTalkRequest`; BadRequest naming the first bad field."""
    if not isinstance(body, dict):
        raise BadRequest(
            "expected a JSON object: {tenant_id, provider_id, template_id, to, vars, trace_id}"
        )
    to = body.get("to")
    if not isinstance(to, list) or not to:
        raise _bad("to", f"must be a non-empty list of phone numbers, got {to!r}")
    if len(to) > MAX_RECIPIENTS:
        raise _bad("to", f"holds {len(to)} numbers; at most {MAX_RECIPIENTS} per send")
    for index, phone in enumerate(to):
        # Groups and recipients are Core's to expand; a provider only ever sees numbers.
        if not isinstance(phone, str) or not PHONE.fullmatch(phone):
            raise _bad(
                f"to[{index}]",
                f"must be a phone number of digits (e.g. '01012345678'), got {phone!r}",
            )
    variables = body.get("vars")
    if not isinstance(variables, dict):
        raise _bad("vars", f"must be an object of template variables, got {variables!r}")
    return AlimTalkRequest(
        tenant_id=_text(body, "tenant_id"),
        provider_id=_text(body, "provider_id"),
        template_id=_text(body, "template_id"),
        to=tuple(to),
        vars=variables,
        # Core always sends one; an empty string is still a trace id it chose.
        trace_id=_text(body, "trace_id", required=False),
    )
