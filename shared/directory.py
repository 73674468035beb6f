"""The recipients and groups directory (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared import audit, records
from shared.db import write_transaction
from shared.domain.targets import Target, is_reference, normalize_phone, recipient_targets
from shared.errors import NotFound, ValidationError
from shared.models import Group, GroupMember, Recipient


def group_members(tenant_id: str, group_ids: list[str]) -> dict[str, list[str]]:
    """Recipient ids of each group, in one query (no N+1 on list pages)."""
    members: dict[str, list[str]] = {group_id: [] for group_id in group_ids}
    if not group_ids:
        return members
    rows = (
        GroupMember.for_tenant(tenant_id, GroupMember.group, GroupMember.recipient)
        .where(GroupMember.group.in_(group_ids))
        .order_by(GroupMember.recipient)
    )
    for row in rows:
        members[row.group_id].append(row.recipient_id)
    return members


def replace_members(
    tenant_id: str, group: Group, recipient_ids: list[str], *, actor: str
) -> list[str]:
    """Make ``recipient_ids`` the group's members; every id must be a recipient of the tenant."""
    wanted = list(dict.fromkeys(recipient_ids))
    with write_transaction():
        found = {
            row.id
            for row in Recipient.for_tenant(tenant_id, Recipient.id).where(
                Recipient.id.in_(wanted or [""])
            )
        }
        unknown = [recipient_id for recipient_id in wanted if recipient_id not in found]
        if unknown:
            raise ValidationError(
                f"unknown recipient(s): {', '.join(unknown)}",
                errors={"json": {"members": [f"unknown recipient {item!r}" for item in unknown]}},
            )
        GroupMember.delete().where(GroupMember.group == group.id).execute()
        if wanted:
            GroupMember.insert_many(
                [{"tenant": tenant_id, "group": group.id, "recipient": item} for item in wanted]
            ).execute()
        audit.record(
            tenant_id, actor, "group.members_replace", f"group:{group.id}", {"members": wanted}
        )
    return wanted


def members_of(tenant_id: str, group_id: str) -> list[str]:
    """Recipient ids of one group."""
    return group_members(tenant_id, [group_id])[group_id]


def create_group(
    tenant_id: str, name: str, members: list[str] | None, *, actor: str
) -> tuple[Group, list[str]]:
    """A new group and its members, in one transaction (a bad member leaves no group behind)."""
    with write_transaction():
        group = records.create(
            Group,
            tenant_id,
            {"name": name},
            actor=actor,
            conflict=f"a group named {name!r} already exists",
        )
        return group, replace_members(tenant_id, group, members, actor=actor) if members else []


def update_group(
    tenant_id: str, group_id: str, name: str | None, members: list[str] | None, *, actor: str
) -> tuple[Group, list[str]]:
    """Rename a group and/or replace its members, in one transaction."""
    with write_transaction():
        changes = {"name": name} if name is not None else {}
        group = records.update(
            Group,
            tenant_id,
            group_id,
            changes,
            actor=actor,
            conflict=f"a group named {name!r} already exists",
        )
        if members is not None:
            replace_members(tenant_id, group, members, actor=actor)
        return group, members_of(tenant_id, group.id)


def _recipients_of(tenant_id: str, reference: str) -> list[Recipient]:
    """The recipients ``group:<name>`` or ``recipient:<id>`` names; NotFound when unknown."""
    kind, _, value = reference.partition(":")
    if kind == "recipient":
        return [
            Recipient.get_for_tenant(tenant_id, Recipient.id == value, what=f"recipient {value!r}")
        ]
    group = Group.get_for_tenant(tenant_id, Group.name == value, what=f"group {value!r}")
    return list(
        Recipient.for_tenant(tenant_id)
        .join(GroupMember, on=(GroupMember.recipient == Recipient.id))
        .where(GroupMember.group == group.id)
        .order_by(Recipient.name)
    )


def expand_reference(
    tenant_id: str, reference: str
) -> tuple[list[tuple[Target, str]], list[dict[str, str]]]:
    """``group:<name>`` / ``recipient:<id>`` -> ([(target, who)], [members without any address]).

    NotFound when the group or recipient does not exist in the tenant.
    """
    recipients = _recipients_of(tenant_id, reference)
    targets: list[tuple[Target, str]] = []
    missing: list[dict[str, str]] = []
    for recipient in recipients:
        found = recipient_targets(recipient.__data__)
        if not found:
            missing.append(
                {
                    "recipient_id": recipient.id,
                    "name": recipient.name,
                    "reason": "no slack_id, email, telegram_id or teams_id",
                }
            )
        targets.extend((target, f"{reference} ({recipient.name})") for target in found)
    return targets, missing


@dataclass
class PhoneExpansion:
    """Phone numbers for a Kakao ``to[]``: deduplicated, in order, with what each item gave."""

    phones: list[str] = field(default_factory=list)
    expanded: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def expand_phones(tenant_id: str, items: list[str]) -> PhoneExpansion:
    """Phone numbers, ``group:<name>`` and ``recipient:<id>`` -> normalised phone numbers.

    Members without a phone go in ``missing``; an unknown group or recipient and a
    malformed number go in ``problems`` (one line each, naming the item).
    """
    result = PhoneExpansion()
    for item in items:
        phones: list[str] = []
        if is_reference(item):
            try:
                recipients = _recipients_of(tenant_id, item)
            except NotFound as error:
                result.problems.append(f"{item}: {error.message}")
                continue
            for recipient in recipients:
                try:
                    phones.append(normalize_phone(recipient.phone or ""))
                except ValueError:
                    reason = "no phone" if not recipient.phone else "phone is not a valid number"
                    result.missing.append(
                        {"recipient_id": recipient.id, "name": recipient.name, "reason": reason}
                    )
        else:
            try:
                phones.append(normalize_phone(item))
            except ValueError as error:
                result.problems.append(str(error))
                continue
        result.expanded.append({"item": item, "phones": phones})
        result.phones.extend(phone for phone in phones if phone not in result.phones)
    return result
