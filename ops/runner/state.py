"""The runner's state directory: keys (0600), certificate, Core's CA and the runner's identity.

One directory per runner (several runners on one host use several
directories). Every file is written whole to a temporary name and renamed,
so a runner killed mid-write keeps the previous version.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import pki
from shared.domain import job_signing
from shared.private_files import PRIVATE_FILE_MODE, private_dir

#: The runner's TLS certificate followed by its key, in one file so renewal replaces both at once.
CLIENT_FILE = "client.pem"
#: Raw 32-byte Ed25519 key that signs results and re-enrollment proofs.
IDENTITY_FILE = "identity.key"
#: Core's CA certificate (PEM), pinned at enrollment.
CA_FILE = "ca.pem"
#: Raw 32-byte Ed25519 public key Core signs jobs with.
JOB_KEY_FILE = "job-signing.pub"
#: The current session token (rotated by Core over the stream).
TOKEN_FILE = "session-token"  # noqa: S105 - a file name, not a secret
#: Runner id, tenant id, addresses, labels, when the certificate arrived.
RUNNER_FILE = "runner.json"
#: The renewal hook given at enrollment, for `runner start` without the flag.
HOOK_FILE = "renewal-hook"
#: The SQLite outbox, seen-nonce cache and job journal.
OUTBOX_FILE = "outbox.sqlite3"


#: Held (flock) by the running agent, so two agents never share one state dir.
LOCK_FILE = "agent.lock"


class StateLocked(RuntimeError):
    """Another agent runs on this state directory."""


class NotEnrolled(RuntimeError):
    """The state directory holds no enrollment; `aisopsflow runner enroll` makes one."""


@dataclass
class Identity:
    """Who this runner is and where it reaches Core."""

    runner_id: str
    tenant_id: str
    gateway_address: str
    enroll_address: str
    labels: dict[str, str] = field(default_factory=dict)
    #: Unix seconds the current certificate was stored (renewal is timed from it).
    cert_received_at: float = 0.0


def split_client_pem(data: bytes) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) from a CLIENT_FILE."""
    marker = b"-----BEGIN PRIVATE KEY-----"
    index = data.find(marker)
    if index < 0:
        raise NotEnrolled("the client certificate file holds no private key")
    return data[:index], data[index:]


class RunnerState:
    """Reads and writes the files of one state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def ensure(self) -> None:
        """Create the directory (0700), or tighten an existing one."""
        private_dir(self.directory)

    def lock(self) -> int:
        """Take the directory's lock for this process's lifetime (the descriptor stays open)."""
        self.ensure()
        descriptor = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StateLocked(
                f"another runner agent is using {self.directory}; "
                "give each runner its own --state-dir"
            ) from None
        return descriptor

    @property
    def outbox_path(self) -> Path:
        """Where the SQLite outbox lives."""
        return self.directory / OUTBOX_FILE

    def write(self, name: str, data: bytes) -> None:
        """Replace ``name`` atomically with ``data``, mode 0600."""
        self.ensure()
        target = self.directory / name
        temporary = self.directory / f".{name}.{os.getpid()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)

    def read(self, name: str) -> bytes:
        """The bytes of ``name``; NotEnrolled when it is missing."""
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            raise NotEnrolled(
                f"{self.directory / name} is missing: enroll this runner first "
                "(aisopsflow runner enroll --gateway HOST:PORT --token T --ca-sha256 HEX)"
            ) from None

    def is_enrolled(self) -> bool:
        """Whether an enrollment was stored here."""
        return all((self.directory / name).exists() for name in (RUNNER_FILE, CLIENT_FILE))

    # Identity key: made once, kept across renewals and re-enrollments.
    def identity_key(self) -> Ed25519PrivateKey:
        """The runner's Ed25519 identity key, made and stored on first use."""
        path = self.directory / IDENTITY_FILE
        if not path.exists():
            self.write(IDENTITY_FILE, job_signing.private_key_bytes(job_signing.new_signing_key()))
        return job_signing.private_key_from_raw(path.read_bytes())

    def identity(self) -> Identity:
        """The stored identity."""
        document: dict[str, Any] = json.loads(self.read(RUNNER_FILE))
        return Identity(**document)

    def save_identity(self, identity: Identity) -> None:
        """Store ``identity``."""
        self.write(RUNNER_FILE, json.dumps(identity.__dict__, sort_keys=True).encode())

    def client_certificate(self) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) of the runner's TLS identity."""
        return split_client_pem(self.read(CLIENT_FILE))

    def save_client_certificate(self, certificate_pem: bytes, key_pem: bytes) -> None:
        """Store a new certificate with its key and note when it arrived."""
        self.write(CLIENT_FILE, certificate_pem.rstrip(b"\n") + b"\n" + key_pem)
        if (self.directory / RUNNER_FILE).exists():
            identity = self.identity()
            identity.cert_received_at = time.time()
            self.save_identity(identity)

    def certificate_not_after(self) -> float:
        """Unix seconds the current certificate expires."""
        return pki.not_after(self.client_certificate()[0]).timestamp()

    def ca_pem(self) -> bytes:
        """Core's CA certificate (PEM)."""
        return self.read(CA_FILE)

    def job_signing_key(self) -> bytes:
        """Core's raw job-signing public key."""
        return self.read(JOB_KEY_FILE)

    def session_token(self) -> str:
        """The current session token."""
        return self.read(TOKEN_FILE).decode().strip()

    def save_session_token(self, token: str) -> None:
        """Store a new session token (enrollment or rotation)."""
        self.write(TOKEN_FILE, token.encode())
