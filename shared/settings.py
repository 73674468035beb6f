"""The one settings object, read from ``AISOPSFLOW_*`` environment variables.

Values come from the process environment and, underneath it, an optional
``.env``-style file (``AISOPSFLOW_ENV_FILE``, default ``./.env`` when present).
Every value is validated once, at start-up: a bad one raises
:class:`~shared.errors.SettingsError` whose message is a single line naming the
variable and what it expects, which the entry points print before exiting.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from shared.errors import SettingsError

PREFIX = "AISOPSFLOW_"
MODES = ("onprem", "saas")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The plugins `aisopsflow up` starts, in port order (plugin i on PLUGIN_BASE_PORT + i).
BUNDLED_PLUGINS = ("slack", "email", "telegram", "teams", "kakao-mock")
#: Longest delay the mock Kakao provider accepts (latency, delivery delay), in milliseconds.
MAX_MOCK_DELAY_MS = 600_000


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _port(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise SettingsError(f"{name}={raw!r}: expected a TCP port number between 0 and 65535")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise SettingsError(f"{name}={raw!r}: expected a whole number greater than 0")
    return value


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in options:
            raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(options)}")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _origins(name: str, raw: str) -> str:
    for origin in filter(None, (part.strip() for part in raw.split(","))):
        if not re.fullmatch(r"https?://[^/?#@\s]+", origin):
            raise SettingsError(
                f"{name}={raw!r}: expected origins like https://ui.example.com, comma-separated"
            )
    return raw.strip()


def _database_url(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^(sqlite|postgres|postgresql|mysql)(\+pool)?://", value):
        raise SettingsError(
            f"{name}={value.split('://')[0]!r}...: expected a URL starting with sqlite:///, "
            "postgresql:// or mysql://"
        )
    return value


def _redis_url(name: str, raw: str) -> str:
    value = raw.strip()
    if value and not re.match(r"^(redis|rediss|unix)://", value):
        raise SettingsError(f"{name}: expected a URL starting with redis://, rediss:// or unix://")
    return value


def _email_or_empty(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value and not re.match(r"^[^@\s]+@[^@\s]+$", value):
        raise SettingsError(f"{name}={raw!r}: expected an email address")
    return value


def _slug(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^[a-z0-9][a-z0-9-]{0,62}$", value):
        raise SettingsError(
            f"{name}={raw!r}: expected a slug of lower-case letters, digits and '-'"
        )
    return value


def _http_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not re.match(r"^https?://[^/\s]+", value):
        raise SettingsError(f"{name}={raw!r}: expected an http(s):// URL")
    return value


def _regex_or_empty(name: str, raw: str) -> str:
    value = raw.strip()
    try:
        re.compile(value)
    except re.error as error:
        raise SettingsError(f"{name}={raw!r}: expected a regular expression ({error})") from error
    return value


def _fraction(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name}={raw!r}: expected a number from 0 to 1")
    return value


def _milliseconds(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_MOCK_DELAY_MS:
        raise SettingsError(
            f"{name}={raw!r}: expected a whole number of milliseconds from 0 to {MAX_MOCK_DELAY_MS}"
        )
    return value


def _plugin_urls(name: str, raw: str) -> str:
    for item in filter(None, (part.strip() for part in raw.split(","))):
        plugin, sep, url = item.partition("=")
        if not sep or not plugin.strip() or not re.match(r"^https?://", url.strip()):
            raise SettingsError(
                f"{name}: expected name=http(s)://host:port pairs separated by commas, got {item!r}"
            )
    return raw.strip()


def _networks(name: str, raw: str) -> str:
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{name}: expected networks like 10.1.0.0/16 separated by commas, got {item!r}"
            ) from None
    return ",".join(networks)


def _env(variable: str, parse: Callable[[str, str], Any], default: Any, doc: str) -> Any:
    """Declare a settings field bound to one environment variable."""
    return field(default=default, metadata={"env": variable, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Validated configuration shared by every AisOpsFlow process."""

    data_dir: Path = _env(
        "DATA_DIR",
        _text,
        Path("./data"),
        "Directory for the SQLite file, the secret key file and the embedded Redis.",
    )
    database_url: str = _env(
        "DATABASE_URL",
        _database_url,
        "",
        "Database URL: `sqlite:///path.db`, `postgresql://user:pass@host/db` or `mysql://user:pass@host/db`. Default: `sqlite:///<DATA_DIR>/aisopsflow.db`.",
    )
    redis_url: str = _env(
        "REDIS_URL",
        _redis_url,
        "",
        "Redis URL for the Dramatiq broker. Unset: the embedded Redis that `aisopsflow up` starts on `<DATA_DIR>/redis.sock`.",
    )
    redis_namespace: str = _env(
        "REDIS_NAMESPACE",
        _slug,
        "aisopsflow",
        "Prefix of every Redis key and queue, so several installations can share one Redis.",
    )
    mode: str = _env(
        "MODE", _choice(MODES), "onprem", "`onprem` (one tenant) or `saas` (many tenants)."
    )
    secret_key: str = _env(
        "SECRET_KEY",
        _text,
        "",
        "Comma-separated Fernet keys, newest first. Unset: a key file `<DATA_DIR>/secret.key` (mode 0600) created on first start.",
    )
    api_host: str = _env("API_HOST", _text, "127.0.0.1", "Address the API listens on.")
    api_port: int = _env("API_PORT", _port, 8080, "Port the API listens on.")
    api_workers: int = _env(
        "API_WORKERS", _positive_int, 2, "gunicorn worker processes for the API."
    )
    worker_processes: int = _env("WORKER_PROCESSES", _positive_int, 1, "Dramatiq worker processes.")
    worker_threads: int = _env(
        "WORKER_THREADS", _positive_int, 4, "Threads per Dramatiq worker process."
    )
    worker_poll_ms: int = _env(
        "WORKER_POLL_MS",
        _positive_int,
        30,
        "Longest an idle Dramatiq worker waits between polls of Redis, in ms (Dramatiq's own default is 1000; lower means faster pick-up and more idle CPU).",
    )
    max_steps_per_workflow: int = _env(
        "MAX_STEPS_PER_WORKFLOW",
        _positive_int,
        500,
        "Most steps one workflow may have; a larger upload is refused (422) naming the limit.",
    )
    plugin_token: str = _env(
        "PLUGIN_TOKEN",
        _text,
        "",
        "Shared token Core and plugins use to authenticate to each other. Unset: generated into `<DATA_DIR>/plugin.token` on first start.",
    )
    plugin_host: str = _env("PLUGIN_HOST", _text, "127.0.0.1", "Address bundled plugins listen on.")
    plugin_base_port: int = _env(
        "PLUGIN_BASE_PORT",
        _port,
        8091,
        "First port of the bundled plugins; each plugin takes the next one (slack, email, telegram, teams, kakao-mock).",
    )
    core_url: str = _env(
        "CORE_URL",
        _http_url,
        "",
        "Where plugins reach the Core API (approval callbacks). Unset: `http://<API_HOST>:<API_PORT>`.",
    )
    plugin_urls: str = _env(
        "PLUGIN_URLS",
        _plugin_urls,
        "",
        "Where Core reaches each plugin, `name=url` comma-separated (e.g. `slack=http://plugin-slack:8091`). Unset: `http://<PLUGIN_HOST>:<port>` as `aisopsflow up` starts them.",
    )
    outbound_allowed_networks: str = _env(
        "OUTBOUND_ALLOWED_NETWORKS",
        _networks,
        "",
        "saas mode: internal networks (CIDRs, comma-separated) that URLs a tenant controls (http steps, Teams webhook URLs, Kakao providers) may reach; every other loopback, private, link-local or reserved address is refused.",
    )
    kakao_provider_networks: str = _env(
        "KAKAO_PROVIDER_NETWORKS",
        _networks,
        "",
        "saas mode: more internal networks (CIDRs, comma-separated) a tenant's Kakao provider may be in, on top of AISOPSFLOW_OUTBOUND_ALLOWED_NETWORKS.",
    )
    gateway_host: str = _env(
        "GATEWAY_HOST",
        _text,
        "127.0.0.1",
        "Address the runner gateway's two gRPC servers listen on.",
    )
    gateway_enroll_port: int = _env(
        "GATEWAY_ENROLL_PORT",
        _port,
        7443,
        "Port of the runner enrollment server (server-only TLS).",
    )
    gateway_port: int = _env(
        "GATEWAY_PORT", _port, 7444, "Port of the runner gateway server (mutual TLS)."
    )
    gateway_advertise_host: str = _env(
        "GATEWAY_ADVERTISE_HOST",
        _text,
        "",
        "Host name runners use to reach the gateway (in enrollment answers and certificates). Unset: `<GATEWAY_HOST>`, or 127.0.0.1 when that is a wildcard.",
    )
    runner_ca_cert: str = _env(
        "RUNNER_CA_CERT",
        _text,
        "",
        "PEM file of the CA that signs runner certificates (ECDSA P-256). Unset: created on first start as `<DATA_DIR>/runner-ca/ca.pem`.",
    )
    runner_ca_key: str = _env(
        "RUNNER_CA_KEY",
        _text,
        "",
        "PEM file of that CA's private key (mode 0600). Set together with AISOPSFLOW_RUNNER_CA_CERT.",
    )
    runner_cert_ttl_seconds: int = _env(
        "RUNNER_CERT_TTL_SECONDS",
        _positive_int,
        3600,
        "Lifetime of a runner certificate, in seconds; runners renew at 2/3 of it.",
    )
    runner_enrollment_token_ttl_seconds: int = _env(
        "RUNNER_ENROLLMENT_TOKEN_TTL_SECONDS",
        _positive_int,
        600,
        "Lifetime of a runner enrollment token, in seconds (at most 600).",
    )
    runner_token_rotation_seconds: int = _env(
        "RUNNER_TOKEN_ROTATION_SECONDS",
        _positive_int,
        900,
        "How often the gateway rotates each connected runner's session token, in seconds.",
    )
    runner_token_grace_seconds: int = _env(
        "RUNNER_TOKEN_GRACE_SECONDS",
        _positive_int,
        120,
        "How long a rotated-out runner session token stays valid, in seconds.",
    )
    runner_dispatch_grace_seconds: int = _env(
        "RUNNER_DISPATCH_GRACE_SECONDS",
        _positive_int,
        30,
        "Seconds a runner job may wait to be accepted, on top of its timeout, before Core reports it lost.",
    )
    token_ttl_seconds: int = _env(
        "TOKEN_TTL_SECONDS",
        _positive_int,
        12 * 3600,
        "Lifetime of a login token, in seconds (default 12 h).",
    )
    cookie_secure: bool = _env(
        "COOKIE_SECURE", _bool, False, "Mark the session cookie `Secure` (set true behind HTTPS)."
    )
    allowed_origins: str = _env(
        "ALLOWED_ORIGINS",
        _origins,
        "",
        "Origins (`https://host[:port]`, comma-separated) besides the API's own host whose pages may make writes with the session cookie, e.g. a UI on another host. Bearer-token calls are not checked.",
    )
    min_free_disk_mb: int = _env(
        "MIN_FREE_DISK_MB",
        _positive_int,
        64,
        "`/healthz` answers 503 when the data dir's filesystem has less free space than this, in MiB.",
    )
    login_max_failures: int = _env(
        "LOGIN_MAX_FAILURES",
        _positive_int,
        10,
        "Failed logins for one email within the window before it is locked (429).",
    )
    login_window_seconds: int = _env(
        "LOGIN_WINDOW_SECONDS",
        _positive_int,
        15 * 60,
        "Window for counting failed logins, in seconds.",
    )
    bootstrap_admin_email: str = _env(
        "BOOTSTRAP_ADMIN_EMAIL",
        _email_or_empty,
        "",
        "With the password below: the first admin, created on first start if absent.",
    )
    bootstrap_admin_password: str = _env(
        "BOOTSTRAP_ADMIN_PASSWORD",
        _text,
        "",
        "Password of the bootstrap admin (at least 8 characters).",
    )
    default_tenant_slug: str = _env(
        "DEFAULT_TENANT_SLUG",
        _slug,
        "default",
        "Slug of the tenant created on first start (the only one in onprem mode).",
    )
    log_level: str = _env(
        "LOG_LEVEL", _choice(LOG_LEVELS, upper=True), "INFO", "DEBUG, INFO, WARNING or ERROR."
    )
    # The mock Kakao provider's behaviour at start; `POST /mock/config` changes it at run time.
    kakao_mock_fail_pattern: str = _env(
        "KAKAO_MOCK_FAIL_PATTERN",
        _regex_or_empty,
        "",
        "Mock Kakao provider: recipients whose number matches this regular expression (re.search) fail at send.",
    )
    kakao_mock_failure_rate: float = _env(
        "KAKAO_MOCK_FAILURE_RATE",
        _fraction,
        0.0,
        "Mock Kakao provider: chance (0 to 1) that each recipient fails at send.",
    )
    kakao_mock_down: bool = _env(
        "KAKAO_MOCK_DOWN",
        _bool,
        False,
        "Mock Kakao provider: answer 503 to everything but `/mock/*`.",
    )
    kakao_mock_latency_ms: int = _env(
        "KAKAO_MOCK_LATENCY_MS",
        _milliseconds,
        0,
        "Mock Kakao provider: wait before answering a send, in ms.",
    )
    kakao_mock_delivery_delay_ms: int = _env(
        "KAKAO_MOCK_DELIVERY_DELAY_MS",
        _milliseconds,
        500,
        "Mock Kakao provider: wait after a send before posting its delivery events to Core, in ms.",
    )
    kakao_mock_delivery_fail_pattern: str = _env(
        "KAKAO_MOCK_DELIVERY_FAIL_PATTERN",
        _regex_or_empty,
        "",
        "Mock Kakao provider: accepted recipients matching this regular expression get a `failed` delivery event.",
    )
    kakao_mock_delivery_events: bool = _env(
        "KAKAO_MOCK_DELIVERY_EVENTS",
        _bool,
        True,
        "Mock Kakao provider: post delivery events to Core (`POST /api/kakao/delivery-events`).",
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aisopsflow.db').resolve()}"

    @property
    def resolved_core_url(self) -> str:
        """The Core API's base URL as plugins should call it."""
        if self.core_url:
            return self.core_url
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        return f"http://{host}:{self.api_port}"

    def plugin_url(self, name: str) -> str:
        """Base URL Core uses to reach plugin ``name``."""
        for item in filter(None, (part.strip() for part in self.plugin_urls.split(","))):
            plugin, _, url = item.partition("=")
            if plugin.strip() == name:
                return url.strip().rstrip("/")
        return f"http://{self.plugin_host}:{self.plugin_base_port + BUNDLED_PLUGINS.index(name)}"

    @property
    def resolved_gateway_host(self) -> str:
        """The host name runners reach the gateway at."""
        if self.gateway_advertise_host:
            return self.gateway_advertise_host
        return "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::", "") else self.gateway_host

    @property
    def embedded_redis(self) -> bool:
        """True when no Redis URL is configured and the embedded one is used."""
        return not self.redis_url

    @property
    def embedded_redis_socket(self) -> Path:
        """Unix socket of the embedded Redis inside the data dir."""
        return (self.data_dir / "redis.sock").resolve()

    @property
    def resolved_redis_url(self) -> str:
        """The Redis URL, defaulting to the embedded Redis socket."""
        return self.redis_url or f"unix://{self.embedded_redis_socket}"


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, description) for each setting, for the README and ``--help``."""
    rows = []
    for item in fields(Settings):
        default = item.default
        rows.append(
            (
                PREFIX + item.metadata["env"],
                "" if default in ("", None) else str(default),
                item.metadata["doc"],
            )
        )
    return rows


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=value`` file (comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :]
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings from ``environ`` (default: the process environment).

    Raises SettingsError naming the first bad variable.
    """
    env = dict(os.environ if environ is None else environ)
    env_file = env.get(PREFIX + "ENV_FILE")
    file_path = Path(env_file) if env_file else Path(".env")
    if env_file and not file_path.is_file():
        raise SettingsError(f"{PREFIX}ENV_FILE={env_file!r}: no such file")
    merged = {**read_env_file(file_path), **env} if file_path.is_file() else env

    values: dict[str, Any] = {}
    for item in fields(Settings):
        variable = PREFIX + item.metadata["env"]
        raw = merged.get(variable)
        if raw is None or (raw.strip() == "" and item.default not in ("", None)):
            continue
        parsed = item.metadata["parse"](variable, raw)
        values[item.name] = Path(parsed) if item.name == "data_dir" else parsed
    settings = Settings(**values)
    if settings.bootstrap_admin_email and len(settings.bootstrap_admin_password) < 8:
        raise SettingsError(
            f"{PREFIX}BOOTSTRAP_ADMIN_PASSWORD: expected at least 8 characters "
            f"when {PREFIX}BOOTSTRAP_ADMIN_EMAIL is set"
        )
    return settings
