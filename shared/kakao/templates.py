"""The tenant's AlimTalk template registry (SPEC §6.2): lookups and changes."""

from __future__ import annotations

import json
from typing import Any

from shared import records
from shared.errors import ValidationError
from shared.models import KakaoTemplate


def template_view(row: KakaoTemplate) -> dict[str, Any]:
    """The API's view of a template row."""
    return {
        "id": row.id,
        "provider_id": row.provider_id,
        "template_id": row.template_id,
        "required_vars": required_vars(row),
        "description": row.description,
        "active": row.active,
        "created_at": row.created_at,
    }


def required_vars(row: KakaoTemplate) -> list[str]:
    """The variable names a send with this template must fill."""
    return list(json.loads(row.required_vars_json or "[]"))


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    stored = dict(values)
    if "required_vars" in stored:
        stored["required_vars_json"] = json.dumps(list(dict.fromkeys(stored.pop("required_vars"))))
    return stored


def _conflict(values: dict[str, Any]) -> str:
    if "template_id" in values and "provider_id" in values:
        return (
            f"template {values['template_id']!r} of provider {values['provider_id']!r} "
            "is already registered"
        )
    return "another template with this provider_id and template_id is already registered"


def create_template(tenant_id: str, values: dict[str, Any], *, actor: str) -> KakaoTemplate:
    """Register a template; Conflict (409) when (provider_id, template_id) is taken."""
    return records.create(
        KakaoTemplate, tenant_id, _stored(values), actor=actor, conflict=_conflict(values)
    )


def update_template(
    tenant_id: str, row_id: str, values: dict[str, Any], *, actor: str
) -> KakaoTemplate:
    """Change a template; NotFound when it is not the tenant's, Conflict on a taken id."""
    return records.update(
        KakaoTemplate, tenant_id, row_id, _stored(values), actor=actor, conflict=_conflict(values)
    )


def resolve_template(tenant_id: str, provider_key: str, template_id: str) -> KakaoTemplate:
    """The active template; ValidationError (422) naming ``template_id`` otherwise."""
    row = (
        KakaoTemplate.for_tenant(tenant_id)
        .where(KakaoTemplate.provider_id == provider_key, KakaoTemplate.template_id == template_id)
        .first()
    )
    if row is None:
        problem = (
            f"unknown Kakao template {template_id!r} of provider {provider_key!r}; "
            "register it at /api/kakao/templates"
        )
    elif not row.active:
        problem = f"Kakao template {template_id!r} of provider {provider_key!r} is inactive"
    else:
        return row
    raise ValidationError(problem, errors={"json": {"template_id": [problem]}})
