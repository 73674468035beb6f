"""First-start preparation shared by `db upgrade`, `api` and `up`: schema, default tenant, first admin."""

from __future__ import annotations

import logging

from shared import migrations
from shared.db import bind, connection
from shared.errors import Conflict
from shared.keyring import load_keys
from shared.models import User
from shared.plugin_token import load_plugin_token
from shared.private_files import private_dir
from shared.settings import Settings
from shared.tenancy import ensure_default_tenant
from shared.users import create_user

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> list[int]:
    """Migrate, create the key files, the default tenant and the bootstrap admin.

    Idempotent; returns the migration versions applied by this call.
    """
    private_dir(settings.data_dir)
    load_keys(settings)
    load_plugin_token(settings)
    bind(settings.resolved_database_url)
    with connection():
        applied = migrations.upgrade()
        tenant = ensure_default_tenant(settings)
        email = settings.bootstrap_admin_email
        if email and not User.select().where(User.email == email).exists():
            try:
                create_user(
                    tenant.id,
                    email=email,
                    password=settings.bootstrap_admin_password,
                    role="admin",
                    actor="bootstrap",
                )
                log.info("created bootstrap admin %s", email)
            except Conflict:
                pass  # another process created it first
    return applied
