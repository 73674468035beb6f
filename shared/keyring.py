"""The Fernet key ring that encrypts secrets: from AISOPSFLOW_SECRET_KEY or a 0600 key file."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from shared.errors import SettingsError
from shared.settings import Settings

KEY_FILE_NAME = "secret.key"


def key_file_path(settings: Settings) -> Path:
    """Where the key file lives when no key is given in the environment."""
    return settings.data_dir / KEY_FILE_NAME


def _parse_keys(text: str, source: str) -> list[bytes]:
    keys = [part.strip().encode() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not keys:
        raise SettingsError(f"{source}: expected one or more Fernet keys, newest first")
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise SettingsError(
                f"{source}: expected comma-separated url-safe base64 Fernet keys "
                "(generate one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            ) from None
    return keys


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Atomically write ``keys`` (newest first) to ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write("\n".join(key.decode() for key in keys) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def load_keys(settings: Settings, *, create: bool = True) -> list[bytes]:
    """The configured keys, newest first; creates the key file on first start."""
    if settings.secret_key:
        return _parse_keys(settings.secret_key, "AISOPSFLOW_SECRET_KEY")
    path = key_file_path(settings)
    if not path.exists():
        if not create:
            raise SettingsError(f"{path}: no secret key file; run `aisopsflow db upgrade` first")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting together must not write two different keys.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(Fernet.generate_key().decode() + "\n")
    return _parse_keys(path.read_text(encoding="ascii"), str(path))


def keyring(settings: Settings) -> MultiFernet:
    """A MultiFernet that encrypts with the newest key and decrypts with any."""
    return MultiFernet([Fernet(key) for key in load_keys(settings)])


class CachedKeyring:
    """The keyring of long-running processes, rebuilt when the key file changes (after rotate-key)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stamp: float | None = None
        self._ring: MultiFernet | None = None

    def _file_stamp(self) -> float | None:
        if self.settings.secret_key:
            return None
        try:
            return key_file_path(self.settings).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def get(self) -> MultiFernet:
        """The current MultiFernet; one stat() call when nothing changed."""
        stamp = self._file_stamp()
        if self._ring is None or stamp != self._stamp:
            self._ring = keyring(self.settings)
            self._stamp = self._file_stamp()
        return self._ring
