"""Marshmallow pieces shared by several resources."""

from __future__ import annotations

import marshmallow as ma


class StrictSchema(ma.Schema):
    """Rejects unknown fields, so a typo is an error rather than silently ignored."""

    class Meta:
        unknown = ma.RAISE


class UserSchema(ma.Schema):
    """A user as the API shows it (never the password hash)."""

    id = ma.fields.String(required=True)
    email = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    tenant_id = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
