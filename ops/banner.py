"""What `up` prints once its API answers: where each service is and how to log in."""

from __future__ import annotations

from collections.abc import Sequence

from ops.processes import PLUGIN_NAMES
from shared.settings import Settings


def http_url(host: str, port: int) -> str:
    """A URL a browser on this machine can open for a server bound to host:port."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def plugin_ports(settings: Settings) -> dict[str, int]:
    """Port of each bundled plugin under `up`: plugin_base_port + its index."""
    return {name: settings.plugin_base_port + index for index, name in enumerate(PLUGIN_NAMES)}


def login_hint(settings: Settings, admins: Sequence[str], api: str) -> str:
    """How to log in: as an admin that exists (``admins``: their emails), or how to make one."""
    if not admins:
        return (
            "  Log in   with a user you create first: aisopsflow user create "
            "--email you@example.com --role admin"
        )
    bootstrap = settings.bootstrap_admin_email.strip().lower()
    first = bootstrap if bootstrap in admins else admins[0]
    password = (
        " with the password in AISOPSFLOW_BOOTSTRAP_ADMIN_PASSWORD" if first == bootstrap else ""
    )
    others = len(admins) - 1
    also = f" (or one of {others} other admin{'s' if others > 1 else ''})" if others else ""
    return f"  Log in   as {first}{password}{also} (POST {api}/api/login)"


def gateway_lines(settings: Settings, ca_sha256: str | None) -> list[str]:
    """Where runners enroll and connect, and the CA fingerprint they pin (``--ca-sha256``)."""
    host = settings.resolved_gateway_host
    host = f"[{host}]" if ":" in host else host
    lines = [
        f"  Runners  enroll at {host}:{settings.gateway_enroll_port} (TLS), "
        f"connect to {host}:{settings.gateway_port} (mTLS)"
    ]
    if ca_sha256:
        lines.append(f"  Runner CA sha256 {ca_sha256}")
    return lines


def banner_lines(
    settings: Settings, admins: Sequence[str] = (), ca_sha256: str | None = None
) -> list[str]:
    """What `up` prints once its API answers: where everything is and how to log in.

    ``admins`` are the emails of the default tenant's admins, oldest first;
    ``ca_sha256`` is the runner CA's fingerprint that enrolling runners pin.
    """
    api = http_url(settings.api_host, settings.api_port)
    lines = ["AisOpsFlow is up.", f"  API      {api}  (API docs: {api}/api/docs)"]
    lines.append(login_hint(settings, admins, api))
    for name, port in plugin_ports(settings).items():
        lines.append(f"  Plugin   {name:<11}{http_url(settings.plugin_host, port)}")
    slack = http_url(settings.plugin_host, plugin_ports(settings)["slack"])
    lines.append(
        f"  Slack    interactions URL (Request URL in your Slack app): {slack}/slack/interactions"
    )
    lines.append(
        f"  Telegram webhook URL (setWebhook): {http_url(settings.plugin_host, plugin_ports(settings)['telegram'])}/telegram/webhook"
    )
    lines.extend(gateway_lines(settings, ca_sha256))
    lines.append("  Stop     Ctrl-C (or SIGTERM)")
    return lines
