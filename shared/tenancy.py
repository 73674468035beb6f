"""Tenants: the default one, creating more in saas mode, and naming one on a webhook."""

from __future__ import annotations

import re
from collections.abc import Mapping

import peewee

from shared import audit
from shared.db import PreparedSelect, write_transaction
from shared.errors import Conflict, NotFound, ValidationError
from shared.models import Tenant
from shared.settings import Settings

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

#: Header a saas-mode webhook sender may use to name its tenant.
TENANT_HEADER = "X-AisOpsFlow-Tenant"
#: Query parameter a saas-mode webhook sender may use instead (Alertmanager can't set headers).
TENANT_QUERY_PARAMETER = "tenant"


def check_slug(slug: str) -> None:
    """Raise ValidationError unless ``slug`` is lower-case letters, digits and '-'."""
    if not SLUG_PATTERN.match(slug):
        raise ValidationError(
            f"tenant slug {slug!r} is invalid: use 1-63 lower-case letters, digits and '-'",
            errors={"slug": ["must match ^[a-z0-9][a-z0-9-]{0,62}$"]},
        )


def ensure_default_tenant(settings: Settings) -> Tenant:
    """The tenant created on first start; idempotent and safe under concurrency."""
    existing = Tenant.get_or_none(Tenant.slug == settings.default_tenant_slug)
    if existing:
        return existing
    try:
        with write_transaction():
            tenant = Tenant.create(
                name="Default", slug=settings.default_tenant_slug, mode=settings.mode
            )
            audit.record(tenant.id, "system", "tenant.create", f"tenant:{tenant.slug}")
            return tenant
    except peewee.IntegrityError:
        return Tenant.get(Tenant.slug == settings.default_tenant_slug)


def create_tenant(settings: Settings, *, name: str, slug: str, actor: str = "system") -> Tenant:
    """A new tenant (saas mode only); Conflict if the slug is taken."""
    if settings.mode != "saas":
        raise Conflict("onprem mode has a single tenant; set AISOPSFLOW_MODE=saas to create more")
    check_slug(slug)
    if not name.strip():
        raise ValidationError(
            "tenant name must not be empty", errors={"name": ["must not be empty"]}
        )
    try:
        with write_transaction():
            tenant = Tenant.create(name=name.strip(), slug=slug, mode="saas")
            audit.record(tenant.id, actor, "tenant.create", f"tenant:{slug}")
            return tenant
    except peewee.IntegrityError:
        raise Conflict(f"a tenant with slug {slug!r} already exists") from None


#: Read on every webhook: its SQL is generated once (see shared.db.PreparedSelect).
_TENANT_BY_SLUG = PreparedSelect(lambda slug: Tenant.select().where(Tenant.slug == slug))


def tenant_by_slug(slug: str) -> Tenant:
    """The tenant with this slug; NotFound otherwise."""
    tenant = _TENANT_BY_SLUG.first(slug)
    if tenant is None:
        raise NotFound(f"tenant {slug!r} not found")
    return tenant


def webhook_tenant(
    settings: Settings, query: Mapping[str, str], headers: Mapping[str, str]
) -> Tenant:
    """The tenant a webhook request is for.

    onprem: always the default tenant. saas: the ``tenant`` query parameter or
    the ``X-AisOpsFlow-Tenant`` header names its slug; neither, or an unknown
    slug, answers 404 so a sender learns nothing about other tenants.
    """
    if settings.mode == "onprem":
        return tenant_by_slug(settings.default_tenant_slug)
    slug = query.get(TENANT_QUERY_PARAMETER) or headers.get(TENANT_HEADER) or ""
    if not slug:
        raise NotFound(
            f"saas mode: name the tenant with ?{TENANT_QUERY_PARAMETER}=<slug> or the {TENANT_HEADER} header"
        )
    return tenant_by_slug(slug)
