"""Kakao AlimTalk registries: the tenant's templates and providers (customer providers)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, require, tenant_id
from api.schemas import StrictSchema
from shared import records
from shared.domain.permissions import (
    KAKAO_PROVIDERS_WRITE,
    READ,
    TEMPLATES_WRITE,
)
from shared.kakao import providers
from shared.kakao.templates import create_template, template_view, update_template
from shared.models import KakaoProvider, KakaoTemplate

blp = Blueprint(
    "kakao", __name__, url_prefix="/api/kakao", description="Kakao AlimTalk templates and providers"
)

#: A provider id (also what templates and sends name it by).
KEY = ma.validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    error="use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
)
TEMPLATE_ID = ma.validate.Length(min=1, max=128)
_var_name = ma.validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", error="not a variable name")


def _url(**options: Any) -> ma.fields.Url:
    return ma.fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        validate=ma.validate.Length(max=500),
        metadata={"description": "http:// or https:// base URL of the provider plugin"},
        **options,
    )


class TemplateInSchema(StrictSchema):
    provider_id = ma.fields.String(required=True, validate=KEY)
    template_id = ma.fields.String(required=True, validate=TEMPLATE_ID)
    required_vars = ma.fields.List(ma.fields.String(validate=_var_name), load_default=list)
    description = ma.fields.String(load_default="", validate=ma.validate.Length(max=2000))
    active = ma.fields.Boolean(load_default=True)


class TemplatePatchSchema(StrictSchema):
    provider_id = ma.fields.String(validate=KEY)
    template_id = ma.fields.String(validate=TEMPLATE_ID)
    required_vars = ma.fields.List(ma.fields.String(validate=_var_name))
    description = ma.fields.String(validate=ma.validate.Length(max=2000))
    active = ma.fields.Boolean()


class TemplateSchema(ma.Schema):
    id = ma.fields.String(required=True)
    provider_id = ma.fields.String(required=True)
    template_id = ma.fields.String(required=True)
    required_vars = ma.fields.List(ma.fields.String(), required=True)
    description = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    created_at = ma.fields.DateTime(required=True)


class CredentialsSchema(StrictSchema):
    token = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(min=1, max=4096)
    )


class ProviderInSchema(StrictSchema):
    id = ma.fields.String(required=True, validate=KEY, metadata={"description": "provider key"})
    base_url = _url(required=True)
    auth = ma.fields.String(
        load_default="bearer",
        validate=ma.validate.OneOf(
            ("bearer",),
            error="only 'bearer' providers can be registered here; 'plugin_token' providers "
            "are registered by the operator (aisopsflow up)",
        ),
    )
    credentials = ma.fields.Nested(
        CredentialsSchema, load_only=True, metadata={"description": "write-only"}
    )
    active = ma.fields.Boolean(load_default=True)


class ProviderPatchSchema(StrictSchema):
    base_url = _url()
    credentials = ma.fields.Nested(CredentialsSchema, load_only=True)
    active = ma.fields.Boolean()


class ProviderSchema(ma.Schema):
    id = ma.fields.String(required=True)
    base_url = ma.fields.String(required=True)
    auth = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    credentials_set = ma.fields.Boolean(required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


# ---- templates ----------------------------------------------------------------------------


def _template(row_id: str) -> KakaoTemplate:
    return KakaoTemplate.get_for_tenant(
        tenant_id(), KakaoTemplate.id == row_id, what=f"Kakao template {row_id!r}"
    )


@blp.route("/templates")
class Templates(MethodView):
    @blp.response(200, TemplateSchema(many=True))
    @require(READ)
    def get(self) -> Any:
        """The tenant's AlimTalk templates."""
        rows = KakaoTemplate.for_tenant(tenant_id()).order_by(
            KakaoTemplate.provider_id, KakaoTemplate.template_id
        )
        return [template_view(row) for row in rows]

    @blp.arguments(TemplateInSchema)
    @blp.response(201, TemplateSchema)
    @blp.alt_response(409, description="(provider_id, template_id) is already registered")
    @require(TEMPLATES_WRITE)
    def post(self, body: dict[str, Any]) -> Any:
        """Register a template and the vars a send must fill."""
        return template_view(create_template(tenant_id(), body, actor=actor()))


@blp.route("/templates/<string:template_row_id>")
class TemplateById(MethodView):
    @blp.response(200, TemplateSchema)
    @require(READ)
    def get(self, template_row_id: str) -> Any:
        """One template."""
        return template_view(_template(template_row_id))

    @blp.arguments(TemplatePatchSchema)
    @blp.response(200, TemplateSchema)
    @require(TEMPLATES_WRITE)
    def patch(self, body: dict[str, Any], template_row_id: str) -> Any:
        """Change a template (e.g. ``active: false`` to stop sends with it)."""
        return template_view(update_template(tenant_id(), template_row_id, body, actor=actor()))

    @blp.response(204)
    @require(TEMPLATES_WRITE)
    def delete(self, template_row_id: str) -> None:
        """Delete a template."""
        records.delete(KakaoTemplate, tenant_id(), template_row_id, actor=actor())


# ---- providers ----------------------------------------------------------------------------


def _provider_views(rows: list[KakaoProvider]) -> list[dict[str, Any]]:
    has = providers.credentials_set(tenant_id(), rows)
    return [
        {
            "id": row.provider_key,
            "base_url": row.base_url,
            "auth": row.auth,
            "active": row.active,
            "credentials_set": has[row.provider_key],
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
        for row in rows
    ]


def _ring() -> Any:
    return current_app.extensions["aisopsflow.keys"].get()


def _token(body: dict[str, Any]) -> str | None:
    return (body.get("credentials") or {}).get("token")


@blp.route("/providers")
class Providers(MethodView):
    @blp.response(200, ProviderSchema(many=True))
    @require(READ)
    def get(self) -> Any:
        """The tenant's providers (credentials are never shown: only ``credentials_set``)."""
        rows = list(KakaoProvider.for_tenant(tenant_id()).order_by(KakaoProvider.provider_key))
        return _provider_views(rows)

    @blp.arguments(ProviderInSchema)
    @blp.response(201, ProviderSchema)
    @blp.alt_response(409, description="a provider with this id exists")
    @require(KAKAO_PROVIDERS_WRITE)
    def post(self, body: dict[str, Any]) -> Any:
        """Register a provider of the tenant; ``credentials.token`` goes to the secrets store."""
        values = {
            "provider_key": body["id"],
            "base_url": body["base_url"].rstrip("/"),
            "auth": body["auth"],
            "active": body["active"],
        }
        providers.check_base_url(values["base_url"], current_app.config["SETTINGS"])
        row = providers.create_provider(_ring(), tenant_id(), values, _token(body), actor=actor())
        return _provider_views([row])[0]


@blp.route("/providers/<string:provider_id>")
class ProviderById(MethodView):
    @blp.response(200, ProviderSchema)
    @require(READ)
    def get(self, provider_id: str) -> Any:
        """One provider."""
        return _provider_views([providers.get_provider_row(tenant_id(), provider_id)])[0]

    @blp.arguments(ProviderPatchSchema)
    @blp.response(200, ProviderSchema)
    @require(KAKAO_PROVIDERS_WRITE)
    def patch(self, body: dict[str, Any], provider_id: str) -> Any:
        """Change a provider's base_url, active flag or credentials."""
        values = {key: body[key] for key in ("base_url", "active") if key in body}
        if "base_url" in values:
            values["base_url"] = values["base_url"].rstrip("/")
            providers.check_base_url(values["base_url"], current_app.config["SETTINGS"])
        row = providers.update_provider(
            _ring(), tenant_id(), provider_id, values, _token(body), actor=actor()
        )
        return _provider_views([row])[0]

    @blp.response(204)
    @require(KAKAO_PROVIDERS_WRITE)
    def delete(self, provider_id: str) -> None:
        """Delete a provider and its stored credential."""
        providers.delete_provider(tenant_id(), provider_id, actor=actor())
