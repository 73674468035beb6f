"""What every Kakao send is checked against before it goes out: provider, template, vars, recipients.

One function for the two senders (send-test and the notify step), so they refuse
the same things with the same words: send-test turns the problems into one 422,
the notify step into the failure of its ``kakao:`` target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.directory import PhoneExpansion, expand_phones
from shared.domain.kakao import missing_vars
from shared.errors import ValidationError
from shared.kakao.providers import Provider, resolve_provider
from shared.kakao.templates import required_vars, resolve_template


@dataclass
class SendCheck:
    """The provider, the recipients' phones and, by field, what is wrong (empty: send)."""

    template_id: str = ""
    provider: Provider | None = None
    expansion: PhoneExpansion = field(default_factory=PhoneExpansion)
    missing_vars: list[str] = field(default_factory=list)
    errors: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """Every problem in one line: ``field: what; field: what``."""
        lines = []
        for name, messages in self.errors.items():
            if name == "vars":
                needed = ", ".join(messages)
                lines.append(f"template {self.template_id!r} needs vars that are missing: {needed}")
            else:
                lines.append(f"{name}: {' '.join(messages)}")
        return "; ".join(lines)


def check_send(
    tenant_id: str, provider_key: str, template_id: str, to: list[str], values: dict[str, Any]
) -> SendCheck:
    """Check a send whole: every problem is collected, none stops the others."""
    check = SendCheck(template_id=template_id)
    template = None
    try:
        check.provider = resolve_provider(tenant_id, provider_key)
    except ValidationError as error:
        check.errors.update(error.errors["json"])
    try:
        template = resolve_template(tenant_id, provider_key, template_id)
    except ValidationError as error:
        check.errors.update(error.errors["json"])
    if template is not None:
        check.missing_vars = missing_vars(required_vars(template), values)
        if check.missing_vars:
            check.errors["vars"] = {
                name: [f"required by template {template_id!r}"] for name in check.missing_vars
            }
    check.expansion = expand_phones(tenant_id, to)
    if check.expansion.problems:
        check.errors["to"] = check.expansion.problems
    elif not check.expansion.phones:
        names = ", ".join(item["name"] for item in check.expansion.missing)
        check.errors["to"] = [f"no phone numbers to send to (without a phone: {names or 'nobody'})"]
    return check
