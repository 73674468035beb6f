"""Users of the caller's tenant (admins only)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, current_session, require, tenant_id
from api.schemas import StrictSchema, UserSchema
from shared.domain.permissions import USERS_ADMIN
from shared.errors import Conflict
from shared.models import ROLES, User
from shared.users import create_user, delete_user, update_user

blp = Blueprint("users", __name__, url_prefix="/api/users", description="Users (admin)")


class UserCreateSchema(StrictSchema):
    email = ma.fields.Email(required=True)
    password = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(min=8, max=1024)
    )
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))


class UserUpdateSchema(StrictSchema):
    email = ma.fields.Email()
    password = ma.fields.String(load_only=True, validate=ma.validate.Length(min=8, max=1024))
    role = ma.fields.String(validate=ma.validate.OneOf(ROLES))


@blp.route("")
class Users(MethodView):
    @blp.response(200, UserSchema(many=True))
    @require(USERS_ADMIN)
    def get(self) -> Any:
        """List the tenant's users."""
        return list(User.for_tenant(tenant_id()).order_by(User.email))

    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    @require(USERS_ADMIN)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a user in the caller's tenant."""
        return create_user(
            tenant_id(),
            email=body["email"],
            password=body["password"],
            role=body["role"],
            actor=actor(),
        )


@blp.route("/<string:user_id>")
class UserById(MethodView):
    @blp.response(200, UserSchema)
    @require(USERS_ADMIN)
    def get(self, user_id: str) -> Any:
        """One user."""
        return User.get_for_tenant(tenant_id(), User.id == user_id, what=f"user {user_id!r}")

    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    @blp.alt_response(409, description="The email is taken, or this would demote the last admin")
    @require(USERS_ADMIN)
    def patch(self, body: dict[str, Any], user_id: str) -> Any:
        """Change email, role or password (a new password ends the user's sessions)."""
        return update_user(tenant_id(), user_id, body, actor=actor())

    @blp.response(204)
    @blp.alt_response(409, description="Your own account, or the tenant's last admin")
    @require(USERS_ADMIN)
    def delete(self, user_id: str) -> None:
        """Delete a user and their sessions."""
        if user_id == current_session().user.id:
            raise Conflict("you cannot delete your own account; ask another admin")
        delete_user(tenant_id(), user_id, actor=actor())
