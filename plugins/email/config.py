"""The Email plugin's SMTP settings, read from ``AISOPSFLOW_SMTP_*`` and validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from shared.errors import SettingsError
from shared.settings import PREFIX, read_env_file

MODES = ("plain", "starttls", "ssl")
#: The port each mode uses unless AISOPSFLOW_SMTP_PORT says otherwise.
DEFAULT_PORTS = {"plain": 25, "starttls": 587, "ssl": 465}
#: How long one SMTP socket operation (connect, each command) may take, in milliseconds.
DEFAULT_TIMEOUT_MS = 10_000
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class EmailConfig:
    """Where and how to send: the SMTP server, its mode, the optional login and the sender."""

    host: str
    sender: str
    mode: str = "plain"
    port: int = DEFAULT_PORTS["plain"]
    username: str = ""
    #: Kept out of repr() so that it never reaches a log line or a traceback.
    password: str = field(default="", repr=False)
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    #: False accepts any certificate (a self-signed test server); never in production.
    verify_tls: bool = True

    @property
    def address(self) -> str:
        """``host:port`` as error messages show it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def sender_address(self) -> str:
        """The bare address of ``sender`` (which may be ``Name <addr>``), for MAIL FROM."""
        return parseaddr(self.sender)[1]


def process_environ() -> dict[str, str]:
    """This process's environment over the ``.env`` file, as ``load_settings`` reads them."""
    environ = dict(os.environ)
    path = Path(environ.get(PREFIX + "ENV_FILE") or ".env")
    return {**read_env_file(path), **environ} if path.is_file() else environ


def is_email_address(text: str) -> bool:
    """Whether ``text`` is one plain ``local@domain`` address (no name, no spaces)."""
    local, at, domain = text.rpartition("@")
    return bool(at and local and "@" not in local and "." in domain.strip(".")) and not any(
        character.isspace() or character in "<>,;\"'()" for character in text
    )


def load_email_config(environ: Mapping[str, str]) -> EmailConfig:
    """The validated settings; SettingsError lists every problem, one line each."""
    problems: list[str] = []

    def get(name: str) -> str:
        return (environ.get(PREFIX + "SMTP_" + name) or "").strip()

    host, sender = get("HOST"), get("FROM")
    if not host:
        problems.append(f"{PREFIX}SMTP_HOST is not set: the SMTP server's host name")
    if not sender:
        problems.append(
            f"{PREFIX}SMTP_FROM is not set: the sender address, e.g. alerts@example.com"
        )
    elif not is_email_address(parseaddr(sender)[1]):
        problems.append(
            f"{PREFIX}SMTP_FROM={sender!r}: expected an address like alerts@example.com "
            "or 'AisOpsFlow <alerts@example.com>'"
        )

    mode = get("MODE").lower() or "plain"
    if mode not in MODES:
        problems.append(f"{PREFIX}SMTP_MODE={get('MODE')!r}: expected one of {', '.join(MODES)}")
        mode = "plain"

    port = DEFAULT_PORTS[mode]
    if get("PORT"):
        port = int(get("PORT")) if get("PORT").isdigit() else 0
        if not 1 <= port <= 65535:
            problems.append(
                f"{PREFIX}SMTP_PORT={get('PORT')!r}: expected a TCP port between 1 and 65535"
            )

    timeout_ms = DEFAULT_TIMEOUT_MS
    if get("TIMEOUT_SECONDS"):
        try:
            timeout_ms = round(float(get("TIMEOUT_SECONDS")) * 1000)
        except ValueError:
            timeout_ms = 0
        if not 0 < timeout_ms <= 600_000:
            problems.append(
                f"{PREFIX}SMTP_TIMEOUT_SECONDS={get('TIMEOUT_SECONDS')!r}: "
                "expected a number of seconds above 0 and at most 600"
            )

    verify = get("VERIFY_TLS").lower() or "true"
    if verify not in _TRUE + _FALSE:
        problems.append(f"{PREFIX}SMTP_VERIFY_TLS={get('VERIFY_TLS')!r}: expected true or false")

    username, password = get("USERNAME"), environ.get(PREFIX + "SMTP_PASSWORD") or ""
    # The password's value is never repeated in a message: only whether it is set.
    if username and not password:
        problems.append(f"{PREFIX}SMTP_PASSWORD is not set but {PREFIX}SMTP_USERNAME is")
    if password and not username:
        problems.append(f"{PREFIX}SMTP_USERNAME is not set but {PREFIX}SMTP_PASSWORD is")

    if problems:
        raise SettingsError("\n".join(problems), errors=problems)
    return EmailConfig(
        host=host,
        sender=sender,
        mode=mode,
        port=port,
        username=username,
        password=password,
        timeout_ms=timeout_ms,
        verify_tls=verify in _TRUE,
    )
