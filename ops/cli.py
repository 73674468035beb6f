"""The ``aisopsflow`` command: start processes and administer one installation.

Process commands hand off to ``ops.processes`` and ``ops.stack`` by name, so this
module imports no api/worker/scheduler/plugins code itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from ops.processes import PLUGIN_NAMES
from ops.runner.cli import runner_group
from shared.errors import AisOpsFlowError
from shared.settings import Settings, describe, load_settings

Command = TypeVar("Command", bound=Callable[..., Any])


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"aisopsflow: error: {message}", err=True)
    sys.exit(code)


def with_settings(command: Command) -> Command:
    """Pass validated settings as the first argument; a bad setting is one line and exit 1."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            settings = load_settings()
            return command(settings, *args, **kwargs)
        except AisOpsFlowError as error:
            _fail(error.message)

    return run  # type: ignore[return-value]


def with_database(command: Command) -> Command:
    """Also bind and connect the database (and migrate it, which is idempotent)."""

    @wraps(command)
    def run(settings: Settings, *args: Any, **kwargs: Any) -> Any:
        from shared.bootstrap import prepare
        from shared.db import connection

        prepare(settings)
        with connection():
            return command(settings, *args, **kwargs)

    return run  # type: ignore[return-value]


def _settings_help() -> str:
    return "\n".join(f"  {name}" for name, _, _ in describe())


@click.group(epilog="Settings are read from these environment variables:\n\n" + _settings_help())
def main() -> None:
    """AisOpsFlow: alert -> approval -> execution -> report, safe by default."""


@main.command()
@with_settings
def up(settings: Settings) -> None:
    """Run the whole stack in the foreground: API, workers, scheduler, plugins."""
    from ops.stack import run_stack
    from shared.bootstrap import prepare
    from shared.db import connection
    from shared.kakao.providers import register_bundled_mock
    from shared.users import admin_emails

    prepare(settings)
    # The bundled mock is Kakao provider `mock` of the default tenant, at the URL `up` serves it on.
    register_bundled_mock(settings)
    with connection():
        # The banner's login hint names an admin who exists, not only the bootstrap one.
        admins = admin_emails(_tenant_id(settings, None))
    sys.exit(run_stack(settings, admins))


@main.command()
@with_settings
def api(settings: Settings) -> None:
    """Run the API under gunicorn."""
    from ops.processes import run_api
    from shared.bootstrap import prepare

    prepare(settings)
    run_api(settings)


@main.command()
@with_settings
def worker(settings: Settings) -> None:
    """Run the Dramatiq worker pool."""
    from ops.processes import run_worker

    run_worker(settings)


@main.command()
@with_settings
def scheduler(settings: Settings) -> None:
    """Run the cron scheduler."""
    from ops.processes import run_scheduler

    sys.exit(run_scheduler(settings))


@main.command()
@with_settings
def gateway(settings: Settings) -> None:
    """Run the runner gateway: enrollment (TLS) and connected runners (mTLS)."""
    from ops.processes import run_gateway

    sys.exit(run_gateway(settings))


@main.command()
@click.argument("name", type=click.Choice(PLUGIN_NAMES))
@click.option("--host", default=None, help="Address to listen on (default AISOPSFLOW_PLUGIN_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on.")
@with_settings
def plugin(settings: Settings, name: str, host: str | None, port: int | None) -> None:
    """Run one bundled plugin as its own HTTP service."""
    from ops.processes import run_plugin

    default_port = settings.plugin_base_port + PLUGIN_NAMES.index(name)
    run_plugin(settings, name, host or settings.plugin_host, default_port if port is None else port)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@with_settings
def db_upgrade(settings: Settings) -> None:
    """Apply pending migrations (idempotent); create the default tenant and bootstrap admin."""
    from shared.bootstrap import prepare
    from shared.db import connection
    from shared.migrations import current_version

    applied = prepare(settings)
    with connection():
        version = current_version()
    if applied:
        click.echo(
            f"applied migrations {', '.join(map(str, applied))}; schema at version {version}"
        )
    else:
        click.echo(f"schema already at version {version}; nothing to do")


@main.group()
def kakao() -> None:
    """Kakao AlimTalk providers."""


@kakao.command("register-mock")
@with_settings
def kakao_register_mock(settings: Settings) -> None:
    """Register the bundled mock as provider `mock` of the default tenant (idempotent).

    `aisopsflow up` does this itself; a Docker Compose deployment runs it once.
    """
    from shared.bootstrap import prepare
    from shared.kakao.providers import register_bundled_mock

    prepare(settings)
    changed = register_bundled_mock(settings)
    where = settings.plugin_url("kakao-mock")
    click.echo(f"provider mock at {where}: {'registered' if changed else 'already registered'}")


@main.group()
def tenant() -> None:
    """Tenants (saas mode)."""


@tenant.command("create")
@click.option("--name", required=True, help="Display name.")
@click.option("--slug", required=True, help="Lower-case id used in URLs, e.g. acme.")
@with_settings
@with_database
def tenant_create(settings: Settings, name: str, slug: str) -> None:
    """Create a tenant (saas mode only)."""
    from shared.tenancy import create_tenant

    created = create_tenant(settings, name=name, slug=slug, actor="cli")
    click.echo(f"created tenant {created.slug} ({created.id})")


def _tenant_id(settings: Settings, slug: str | None) -> str:
    from shared.tenancy import tenant_by_slug

    return tenant_by_slug(slug or settings.default_tenant_slug).id


@main.group()
def user() -> None:
    """Users."""


@user.command("create")
@click.option("--email", required=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted when omitted.",
)
@click.option(
    "--role", required=True, type=click.Choice(["admin", "operator", "approver", "viewer"])
)
@click.option(
    "--tenant", "tenant_slug", default=None, help="Tenant slug (default: the default tenant)."
)
@with_settings
@with_database
def user_create(
    settings: Settings, email: str, password: str, role: str, tenant_slug: str | None
) -> None:
    """Create a user."""
    from shared.users import create_user

    created = create_user(
        _tenant_id(settings, tenant_slug), email=email, password=password, role=role, actor="cli"
    )
    click.echo(f"created {created.role} {created.email} ({created.id})")


@main.group()
def secret() -> None:
    """Secrets."""


@secret.command("set")
@click.argument("key")
@click.option(
    "--tenant", "tenant_slug", default=None, help="Tenant slug (default: the default tenant)."
)
@with_settings
@with_database
def secret_set(settings: Settings, key: str, tenant_slug: str | None) -> None:
    """Store a secret; the value is read from standard input (or prompted for, hidden)."""
    from shared import secrets_store
    from shared.keyring import keyring

    if sys.stdin.isatty():
        value = click.prompt("value", hide_input=True)
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        _fail("the secret value is empty; pipe it on standard input")
    created = secrets_store.put(
        keyring(settings), _tenant_id(settings, tenant_slug), key, value, actor="cli"
    )
    click.echo(f"{'created' if created else 'updated'} secret {key}")


@secret.command("rotate-key")
@with_settings
@with_database
def secret_rotate_key(settings: Settings) -> None:
    """Re-encrypt every secret under a new primary key (MultiFernet rotation)."""
    from shared import secrets_store

    count = secrets_store.rotate_key(settings)
    click.echo(f"re-encrypted {count} secret(s) with the new primary key")


@main.group()
def audit() -> None:
    """Audit log."""


@audit.command("verify")
@with_settings
@with_database
def audit_verify(settings: Settings) -> None:
    """Check every tenant's hash chain; name the first broken row."""
    from shared.audit import verify_all

    checked, broken = verify_all()
    if broken:
        click.echo(f"audit log BROKEN at {broken.describe()}", err=True)
        sys.exit(1)
    click.echo(f"audit log OK: {checked} row(s) verified")


@main.group()
def workflow() -> None:
    """Workflows."""


@workflow.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_settings
def workflow_validate(settings: Settings, file: Path) -> None:
    """Check a workflow YAML file; print each problem with its place."""
    from shared.domain.workflow_spec import validate_document

    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(f"{file}: not UTF-8 (byte {error.start} cannot be decoded); save the file as UTF-8")
    # The same step limit as an upload to this installation would meet.
    problems = validate_document(text, max_steps=settings.max_steps_per_workflow)
    for problem in problems:
        click.echo(f"{file}: {problem.describe()}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{file}: valid")


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected name=value, got {value!r}", param_hint="--label")
        labels[key] = rest
    return labels


@click.group("token")
def runner_token() -> None:
    """Enrollment tokens for runner agents."""


@runner_token.command("create")
@click.option("--label", "labels", multiple=True, help="name=value the runner gets (repeatable).")
@click.option(
    "--ttl-seconds",
    type=click.IntRange(1, 600),
    default=None,
    help="Lifetime (default and most: AISOPSFLOW_RUNNER_ENROLLMENT_TOKEN_TTL_SECONDS, <= 600).",
)
@click.option(
    "--tenant", "tenant_slug", default=None, help="Tenant slug (default: the default tenant)."
)
@with_settings
@with_database
def runner_token_create(
    settings: Settings, labels: tuple[str, ...], ttl_seconds: int | None, tenant_slug: str | None
) -> None:
    """Make a single-use enrollment token and print the command a host runs to enroll."""
    from shared.runners import tokens

    token, row = tokens.create_token(
        _tenant_id(settings, tenant_slug), "cli", _labels(labels), ttl_seconds, settings
    )
    answer = tokens.enrollment_answer(token, row, settings)
    click.echo(f"token:      {answer['token']}")
    click.echo(f"expires at: {answer['expires_at'].isoformat()}Z (single use)")
    click.echo(f"gateway:    {answer['gateway']}")
    click.echo(f"CA SHA-256: {answer['ca_sha256']}")
    click.echo("on the host, run:")
    click.echo(f"  {answer['command']}")


runner_group.add_command(runner_token)
main.add_command(runner_group)


if __name__ == "__main__":
    main()
