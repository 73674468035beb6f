"""Which provider a Kakao send goes through, and a tenant's own providers (customer providers).

:func:`resolve_provider` is the one lookup every send uses. It finds the tenant's own
provider first; operator-managed providers (``/api/ops/managed-providers``, a later
issue) slot in at :func:`_managed_provider`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import MultiFernet

from shared import audit, records, secrets_store
from shared.db import connection, write_transaction
from shared.errors import Forbidden, OutboundRefused, ValidationError
from shared.models import KakaoProvider, Secret, utcnow
from shared.outbound import OutboundPolicy, check_url
from shared.settings import Settings
from shared.tenancy import ensure_default_tenant

#: The provider key `aisopsflow up` gives the bundled mock provider.
BUNDLED_MOCK_KEY = "mock"
#: The bundled mock provider's plugin name (its URL comes from settings.plugin_url).
BUNDLED_MOCK_PLUGIN = "kakao-mock"


@dataclass(frozen=True)
class Provider:
    """A provider as a send needs it; ``source`` is ``tenant`` (or ``managed``, later)."""

    key: str
    base_url: str
    auth: str
    active: bool
    source: str = "tenant"


def credential_key(provider_key: str) -> str:
    """The reserved secrets-store key of a tenant provider's bearer credential."""
    return f"kakao.provider.{provider_key}.token"


def url_shape_problem(base_url: str) -> str | None:
    """What is wrong with the shape of a provider URL, or None (pure).

    Credentials in the URL would be shown and audited with it; a query or fragment
    would turn the send path into something else on the provider's server.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@); set credentials.token instead"
    if parts.query or parts.fragment:
        return "must not have a query (?...) or fragment (#...)"
    return None


def check_base_url(base_url: str, settings: Settings) -> None:
    """ValidationError (422) naming ``base_url`` unless Core may call it for a tenant."""
    problem = url_shape_problem(base_url)
    if problem is None:
        try:
            # Checked again when each send connects: a name can be re-pointed after this.
            check_url(base_url, OutboundPolicy.for_kakao_providers(settings))
        except OutboundRefused as error:
            problem = error.message
    if problem is not None:
        raise ValidationError(
            f"base_url {problem}", errors={"json": {"base_url": [f"base_url {problem}"]}}
        )


def _managed_provider(tenant_id: str, provider_key: str) -> Provider | None:
    """An operator-managed provider the tenant may use; none exist until the ops issue adds them."""
    return None


def find_provider(tenant_id: str, provider_key: str) -> Provider | None:
    """The provider ``provider_key`` of the tenant (its own first, then managed), or None."""
    row = (
        KakaoProvider.for_tenant(tenant_id)
        .where(KakaoProvider.provider_key == provider_key)
        .first()
    )
    if row is not None:
        return Provider(row.provider_key, row.base_url, row.auth, row.active)
    return _managed_provider(tenant_id, provider_key)


def resolve_provider(tenant_id: str, provider_key: str) -> Provider:
    """The active provider ``provider_key``; ValidationError (422) naming ``provider`` otherwise."""
    provider = find_provider(tenant_id, provider_key)
    if provider is None:
        problem = f"unknown Kakao provider {provider_key!r}; register it at /api/kakao/providers"
    elif not provider.active:
        problem = f"Kakao provider {provider_key!r} is inactive"
    else:
        return provider
    raise ValidationError(problem, errors={"json": {"provider": [problem]}})


def provider_token(
    ring: MultiFernet | None, tenant_id: str, provider: Provider, plugin_token: str
) -> str | None:
    """The bearer token Core presents to ``provider``; None when its credential is not set."""
    if provider.auth == "plugin_token":
        return plugin_token
    if ring is None:
        return None
    return secrets_store.read_system(ring, tenant_id, credential_key(provider.key))


def credentials_set(tenant_id: str, rows: list[KakaoProvider]) -> dict[str, bool]:
    """provider_key -> whether Core holds a credential for it, in one query."""
    keys = [credential_key(row.provider_key) for row in rows]
    stored = {
        row.key
        for row in Secret.for_tenant(tenant_id, Secret.key).where(Secret.key.in_(keys or [""]))
    }
    return {
        row.provider_key: row.auth == "plugin_token" or credential_key(row.provider_key) in stored
        for row in rows
    }


def create_provider(
    ring: MultiFernet,
    tenant_id: str,
    values: dict[str, Any],
    token: str | None,
    *,
    actor: str,
) -> KakaoProvider:
    """A new tenant provider and (optionally) its credential, in one audited transaction."""
    with write_transaction():
        row = records.create(
            KakaoProvider,
            tenant_id,
            values,
            actor=actor,
            conflict=f"a Kakao provider {values['provider_key']!r} already exists",
        )
        if token:
            secrets_store.put_system(
                ring, tenant_id, credential_key(row.provider_key), token, actor=actor
            )
        return row


def update_provider(
    ring: MultiFernet,
    tenant_id: str,
    provider_key: str,
    values: dict[str, Any],
    token: str | None,
    *,
    actor: str,
) -> KakaoProvider:
    """Change a tenant provider's URL, state or credential; NotFound when it is not theirs.

    A ``plugin_token`` provider (the operator's, e.g. the bundled mock) may only be
    switched on or off: pointed elsewhere, it would hand the shared plugin token
    to whoever listens there.
    """
    with write_transaction():
        row = get_provider_row(tenant_id, provider_key)
        if row.auth == "plugin_token" and (
            token or values.get("base_url", row.base_url) != row.base_url
        ):
            raise Forbidden(
                f"Kakao provider {provider_key!r} is registered by the operator: only its "
                "'active' flag can be changed here"
            )
        row = records.update(KakaoProvider, tenant_id, row.id, values, actor=actor, conflict="")
        if token:
            secrets_store.put_system(
                ring, tenant_id, credential_key(row.provider_key), token, actor=actor
            )
        return row


def delete_provider(tenant_id: str, provider_key: str, *, actor: str) -> None:
    """Delete a tenant provider and its credential."""
    with write_transaction():
        row = get_provider_row(tenant_id, provider_key)
        records.delete(KakaoProvider, tenant_id, row.id, actor=actor)
        secrets_store.delete_system(tenant_id, credential_key(provider_key), actor=actor)


def get_provider_row(tenant_id: str, provider_key: str) -> KakaoProvider:
    """The tenant's own provider row ``provider_key``; NotFound (404) otherwise."""
    return KakaoProvider.get_for_tenant(
        tenant_id,
        KakaoProvider.provider_key == provider_key,
        what=f"Kakao provider {provider_key!r}",
    )


def register_operator_provider(
    tenant_id: str, provider_key: str, base_url: str, *, actor: str
) -> bool:
    """Create or repoint a provider that authenticates with the shared plugin token.

    Operator code only (``aisopsflow up``): the API refuses ``plugin_token`` because a
    tenant could aim base_url at its own server and collect the token. Idempotent;
    True when something changed.
    """
    with write_transaction():
        row = (
            KakaoProvider.for_tenant(tenant_id)
            .where(KakaoProvider.provider_key == provider_key)
            .first()
        )
        if row is None:
            KakaoProvider.create(
                tenant=tenant_id, provider_key=provider_key, base_url=base_url, auth="plugin_token"
            )
        elif row.base_url == base_url and row.auth == "plugin_token":
            return False
        else:
            KakaoProvider.update(base_url=base_url, auth="plugin_token", updated_at=utcnow()).where(
                KakaoProvider.id == row.id
            ).execute()
            # A bearer credential left from a tenant-managed provider of that name is moot now.
            Secret.delete().where(
                Secret.tenant == tenant_id, Secret.key == credential_key(provider_key)
            ).execute()
        audit.record(
            tenant_id,
            actor,
            "kakao_provider.register",
            f"kakao_provider:{provider_key}",
            {"base_url": base_url, "auth": "plugin_token"},
        )
    return True


def register_bundled_mock(settings: Settings) -> bool:
    """Register the bundled mock provider as ``mock`` of the default tenant (``aisopsflow up``).

    Call after :func:`shared.bootstrap.prepare`, which binds and migrates the database.
    """
    with connection():
        tenant = ensure_default_tenant(settings)
        return register_operator_provider(
            tenant.id, BUNDLED_MOCK_KEY, settings.plugin_url(BUNDLED_MOCK_PLUGIN), actor="system"
        )
