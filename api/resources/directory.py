"""Recipients and groups of the caller's tenant, with group membership."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, require, tenant_id
from api.schemas import StrictSchema
from shared import records
from shared.directory import create_group, group_members, members_of, replace_members, update_group
from shared.domain.permissions import DIRECTORY_WRITE, READ
from shared.domain.targets import normalize_phone
from shared.models import Group, Recipient

blp = Blueprint("directory", __name__, url_prefix="/api", description="Recipients and groups")

_name = ma.validate.Length(min=1, max=200)


class PhoneField(ma.fields.String):
    """A phone number, stored normalised (010-1234-5678 and +82 10 1234 5678 -> 01012345678)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return normalize_phone(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as error:
            raise ma.ValidationError(str(error)) from None


class RecipientInSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=_name)
    phone = PhoneField(allow_none=True)
    email = ma.fields.Email(allow_none=True)
    slack_id = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=64))
    telegram_id = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=64))
    teams_id = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=254))


class RecipientPatchSchema(RecipientInSchema):
    name = ma.fields.String(validate=_name)


class RecipientSchema(ma.Schema):
    id = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    phone = ma.fields.String(allow_none=True)
    email = ma.fields.String(allow_none=True)
    slack_id = ma.fields.String(allow_none=True)
    telegram_id = ma.fields.String(allow_none=True)
    teams_id = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class GroupInSchema(StrictSchema):
    name = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    )
    members = ma.fields.List(ma.fields.String(), metadata={"description": "recipient ids"})


class GroupPatchSchema(GroupInSchema):
    name = ma.fields.String(validate=ma.validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"))


class GroupSchema(ma.Schema):
    id = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    members = ma.fields.List(ma.fields.String(), required=True)
    created_at = ma.fields.DateTime(required=True)


class MembersSchema(StrictSchema):
    members = ma.fields.List(
        ma.fields.String(), required=True, metadata={"description": "recipient ids"}
    )


def _recipient_conflict(body: dict[str, Any]) -> str:
    return f"a recipient named {body.get('name')!r} already exists"


def _group_view(group: Group, members: list[str]) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "members": members, "created_at": group.created_at}


@blp.route("/recipients")
class Recipients(MethodView):
    @blp.response(200, RecipientSchema(many=True))
    @require(READ)
    def get(self) -> Any:
        """List the tenant's recipients."""
        return list(Recipient.for_tenant(tenant_id()).order_by(Recipient.name))

    @blp.arguments(RecipientInSchema)
    @blp.response(201, RecipientSchema)
    @require(DIRECTORY_WRITE)
    def post(self, body: dict[str, Any]) -> Any:
        """Add a recipient."""
        return records.create(
            Recipient, tenant_id(), body, actor=actor(), conflict=_recipient_conflict(body)
        )


@blp.route("/recipients/<string:recipient_id>")
class RecipientById(MethodView):
    @blp.response(200, RecipientSchema)
    @require(READ)
    def get(self, recipient_id: str) -> Any:
        """One recipient."""
        return Recipient.get_for_tenant(
            tenant_id(), Recipient.id == recipient_id, what=f"recipient {recipient_id!r}"
        )

    @blp.arguments(RecipientPatchSchema)
    @blp.response(200, RecipientSchema)
    @require(DIRECTORY_WRITE)
    def patch(self, body: dict[str, Any], recipient_id: str) -> Any:
        """Change a recipient's name or addresses."""
        return records.update(
            Recipient,
            tenant_id(),
            recipient_id,
            body,
            actor=actor(),
            conflict=_recipient_conflict(body),
        )

    @blp.response(204)
    @require(DIRECTORY_WRITE)
    def delete(self, recipient_id: str) -> None:
        """Delete a recipient (and their group memberships)."""
        records.delete(Recipient, tenant_id(), recipient_id, actor=actor())


@blp.route("/groups")
class Groups(MethodView):
    @blp.response(200, GroupSchema(many=True))
    @require(READ)
    def get(self) -> Any:
        """List the tenant's groups with their members."""
        groups = list(Group.for_tenant(tenant_id()).order_by(Group.name))
        members = group_members(tenant_id(), [group.id for group in groups])
        return [_group_view(group, members[group.id]) for group in groups]

    @blp.arguments(GroupInSchema)
    @blp.response(201, GroupSchema)
    @require(DIRECTORY_WRITE)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a group, optionally with members."""
        group, members = create_group(tenant_id(), body["name"], body.get("members"), actor=actor())
        return _group_view(group, members)


@blp.route("/groups/<string:group_id>")
class GroupById(MethodView):
    @blp.response(200, GroupSchema)
    @require(READ)
    def get(self, group_id: str) -> Any:
        """One group with its members."""
        group = Group.get_for_tenant(tenant_id(), Group.id == group_id, what=f"group {group_id!r}")
        return _group_view(group, members_of(tenant_id(), group.id))

    @blp.arguments(GroupPatchSchema)
    @blp.response(200, GroupSchema)
    @require(DIRECTORY_WRITE)
    def patch(self, body: dict[str, Any], group_id: str) -> Any:
        """Rename a group and/or replace its members."""
        group, members = update_group(
            tenant_id(), group_id, body.get("name"), body.get("members"), actor=actor()
        )
        return _group_view(group, members)

    @blp.response(204)
    @require(DIRECTORY_WRITE)
    def delete(self, group_id: str) -> None:
        """Delete a group (its recipients stay)."""
        records.delete(Group, tenant_id(), group_id, actor=actor())


@blp.route("/groups/<string:group_id>/members")
class GroupMembers(MethodView):
    @blp.response(200, MembersSchema)
    @require(READ)
    def get(self, group_id: str) -> Any:
        """The group's recipient ids."""
        group = Group.get_for_tenant(tenant_id(), Group.id == group_id, what=f"group {group_id!r}")
        return {"members": members_of(tenant_id(), group.id)}

    @blp.arguments(MembersSchema)
    @blp.response(200, MembersSchema)
    @require(DIRECTORY_WRITE)
    def put(self, body: dict[str, Any], group_id: str) -> Any:
        """Replace the group's members."""
        group = Group.get_for_tenant(tenant_id(), Group.id == group_id, what=f"group {group_id!r}")
        return {"members": replace_members(tenant_id(), group, body["members"], actor=actor())}
