"""The token Core and plugins share: AISOPSFLOW_PLUGIN_TOKEN or a 0600 file in the data dir."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from shared.errors import SettingsError
from shared.settings import Settings

TOKEN_FILE_NAME = "plugin.token"  # noqa: S105 - a file name, not a secret


def token_file_path(settings: Settings) -> Path:
    """Where the generated token lives when none is given in the environment."""
    return settings.data_dir / TOKEN_FILE_NAME


def _create_token_file(path: Path) -> None:
    """Write a fresh token to ``path`` unless it exists, so that readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        # link() fails if the name exists: when `up` starts several processes at once,
        # exactly one token wins and every process reads that one.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)


def load_plugin_token(settings: Settings) -> str:
    """The plugin token; creates ``<data_dir>/plugin.token`` (mode 0600) on first use."""
    if settings.plugin_token:
        return settings.plugin_token
    path = token_file_path(settings)
    if not path.exists():
        _create_token_file(path)
    token = path.read_text(encoding="ascii").strip()
    if not token:
        raise SettingsError(
            f"{path}: the plugin token file is empty; delete it to generate a new one "
            "or set AISOPSFLOW_PLUGIN_TOKEN"
        )
    return token
