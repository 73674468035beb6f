"""Kakao AlimTalk sending: send-test, the message log, and delivery events from providers."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint

from api.auth import actor, plugin_only, require, tenant_id
from api.resources.kakao import KEY, TEMPLATE_ID
from api.schemas import StrictSchema
from shared.domain.kakao import EVENT_STATUSES
from shared.domain.permissions import KAKAO_SEND_TEST, READ
from shared.kakao import fallback
from shared.kakao.events import store_events
from shared.kakao.messages import message_view
from shared.kakao.send_test import send_test
from shared.models import KakaoMessage
from shared.plugin_client import PluginClient

blp = Blueprint(
    "kakao_messages", __name__, url_prefix="/api/kakao", description="Kakao AlimTalk sending"
)


class SendTestSchema(StrictSchema):
    provider = ma.fields.String(required=True, validate=KEY)
    template_id = ma.fields.String(required=True, validate=TEMPLATE_ID)
    to = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=200)),
        required=True,
        validate=ma.validate.Length(min=1, max=1000),
        metadata={"description": "phone numbers, group:<name> or recipient:<id>"},
    )
    vars = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)


class SendTestAnswerSchema(ma.Schema):
    ok = ma.fields.Boolean(required=True)
    provider = ma.fields.String(required=True)
    template_id = ma.fields.String(required=True)
    provider_message_id = ma.fields.String(allow_none=True)
    accepted = ma.fields.Integer(required=True)
    failed = ma.fields.Integer(required=True)
    error = ma.fields.String(allow_none=True)
    trace_id = ma.fields.String(required=True)
    to = ma.fields.List(ma.fields.String(), required=True)
    expanded = ma.fields.List(ma.fields.Dict(), required=True)
    missing_phones = ma.fields.List(ma.fields.Dict(), required=True)
    recipients = ma.fields.List(ma.fields.Dict(), required=True)
    message_ids = ma.fields.List(ma.fields.String(), required=True)


class MessageQuerySchema(StrictSchema):
    execution_id = ma.fields.String()
    provider_message_id = ma.fields.String()
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=500))


class MessageSchema(ma.Schema):
    id = ma.fields.String(required=True)
    provider_id = ma.fields.String(required=True)
    provider_message_id = ma.fields.String(allow_none=True)
    template_id = ma.fields.String(required=True)
    to = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    reason = ma.fields.String(allow_none=True)
    events = ma.fields.List(ma.fields.Dict(), required=True)
    fallback_on = ma.fields.List(ma.fields.String(), required=True)
    fallback_status = ma.fields.String(allow_none=True)
    fallback = ma.fields.Dict(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class EventSchema(ma.Schema):
    class Meta:
        # A provider may add fields to its events; Core reads the ones it knows.
        unknown = ma.EXCLUDE

    provider_message_id = ma.fields.String(
        required=True, validate=ma.validate.Length(min=1, max=128)
    )
    to = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=32))
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(tuple(EVENT_STATUSES)))
    reason = ma.fields.String(allow_none=True, load_default=None)
    occurred_at = ma.fields.AwareDateTime(required=True, default_timezone=None)


class DeliveryEventsSchema(StrictSchema):
    tenant_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    provider_id = ma.fields.String(required=True, validate=KEY)
    events = ma.fields.List(
        ma.fields.Nested(EventSchema), required=True, validate=ma.validate.Length(min=1, max=1000)
    )


class DeliveryEventsAnswerSchema(ma.Schema):
    stored = ma.fields.Integer(required=True)
    duplicates = ma.fields.Integer(required=True)
    unknown = ma.fields.List(ma.fields.Dict(), required=True)
    fallbacks_queued = ma.fields.Integer(required=True)


@blp.route("/send-test", methods=["POST"])
@blp.arguments(SendTestSchema)
@blp.response(200, SendTestAnswerSchema)
@blp.alt_response(422, description="unknown/inactive template or provider, missing vars, bad to")
@require(KAKAO_SEND_TEST)
def send_test_route(body: dict[str, Any]) -> Any:
    """Validate a send as a workflow would, expand ``to``, send it; ``ok: false`` if the provider failed."""
    plugins = current_app.extensions.get("aisopsflow.plugin_client")
    if plugins is None:
        plugins = PluginClient(current_app.config["SETTINGS"])
        current_app.extensions["aisopsflow.plugin_client"] = plugins
    return send_test(
        plugins,
        current_app.extensions["aisopsflow.keys"].get(),
        tenant_id(),
        provider_key=body["provider"],
        template_id=body["template_id"],
        to=body["to"],
        values=body["vars"],
        actor=actor(),
    )


@blp.route("/messages", methods=["GET"])
@blp.arguments(MessageQuerySchema, location="query")
@blp.response(200, MessageSchema(many=True))
@require(READ)
def list_messages(query: dict[str, Any]) -> Any:
    """AlimTalk messages of the tenant, newest first, with their delivery events."""
    rows = KakaoMessage.for_tenant(tenant_id())
    if "execution_id" in query:
        rows = rows.where(KakaoMessage.execution == query["execution_id"])
    if "provider_message_id" in query:
        rows = rows.where(KakaoMessage.provider_message_id == query["provider_message_id"])
    return [
        message_view(row) for row in rows.order_by(KakaoMessage.id.desc()).limit(query["limit"])
    ]


@blp.route("/delivery-events", methods=["POST"])
@plugin_only
@blp.arguments(DeliveryEventsSchema)
@blp.response(200, DeliveryEventsAnswerSchema)
@blp.alt_response(401, description="the plugin token is missing or wrong")
def delivery_events(body: dict[str, Any]) -> Any:
    """Providers report delivered/failed per recipient (plugin token); failures may trigger fallbacks."""
    report = store_events(
        body["tenant_id"],
        body["provider_id"],
        body["events"],
        actor=f"provider:{body['provider_id']}",
    )
    fallback.enqueue(current_app.extensions["aisopsflow.dispatcher"], report.fallbacks)
    return report.as_answer()
