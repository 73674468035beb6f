"""Core's runner-plane keys on disk: the CA that signs runner certificates and the job-signing key.

Made on first use in ``<DATA_DIR>/runner-ca/`` (directory 0700, keys 0600)
unless AISOPSFLOW_RUNNER_CA_CERT/KEY name a CA of the operator's. Every Core
process that needs them (API: fingerprint for enrollment answers; worker:
signing jobs; gateway: issuing certificates) reads the same files; creation
is atomic, so two processes starting together agree on one CA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import pki
from shared.domain import job_signing
from shared.errors import SettingsError
from shared.private_files import PRIVATE_FILE_MODE, private_dir
from shared.settings import Settings

CA_DIR_NAME = "runner-ca"


@dataclass(frozen=True)
class RunnerCA:
    """The CA's certificate and key (PEM), and the certificate's SHA-256 runners pin."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def sha256(self) -> str:
        """Lower-case hex SHA-256 of the CA certificate's DER encoding."""
        return pki.fingerprint(self.cert_pem)


def ca_dir(settings: Settings) -> Path:
    """Where Core keeps its runner CA and job-signing key."""
    return settings.data_dir / CA_DIR_NAME


def _write_new(path: Path, content: bytes) -> bool:
    """Create ``path`` 0600 with ``content`` unless it exists; True when this call made it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)  # fails if another process made it first
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def load_ca(settings: Settings) -> RunnerCA:
    """The operator's CA, or Core's own (created now if missing)."""
    if settings.runner_ca_cert or settings.runner_ca_key:
        if not (settings.runner_ca_cert and settings.runner_ca_key):
            raise SettingsError(
                "AISOPSFLOW_RUNNER_CA_CERT and AISOPSFLOW_RUNNER_CA_KEY must be set together"
            )
        try:
            cert_pem = Path(settings.runner_ca_cert).read_bytes()
            key_pem = Path(settings.runner_ca_key).read_bytes()
        except OSError as error:
            raise SettingsError(f"cannot read the runner CA: {error}") from None
        return RunnerCA(cert_pem, key_pem)
    folder = ca_dir(settings)
    private_dir(folder)
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if not cert_path.exists():
        cert_pem, key_pem = pki.create_ca()
        # The key first: a reader that finds the certificate always finds its key.
        if _write_new(key_path, key_pem):
            _write_new(cert_path, cert_pem)
    return RunnerCA(_wait_for(cert_path), key_path.read_bytes())


def _wait_for(path: Path, attempts: int = 50) -> bytes:
    import time

    for _ in range(attempts):
        if path.exists():
            return path.read_bytes()
        time.sleep(0.05)
    raise SettingsError(f"{path} was not created")


def load_job_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """Core's Ed25519 key that signs runner jobs (created now if missing)."""
    folder = ca_dir(settings)
    private_dir(folder)
    path = folder / "job-signing.key"
    if not path.exists():
        _write_new(path, job_signing.private_key_bytes(job_signing.new_signing_key()))
    return job_signing.private_key_from_raw(_wait_for(path))


@lru_cache(maxsize=4)
def cached_job_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The job-signing key of the data dir, read once per process."""
    return job_signing.private_key_from_raw(
        (data_dir / CA_DIR_NAME / "job-signing.key").read_bytes()
    )
