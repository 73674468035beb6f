"""A stand-in Core for the agent's tests: a CA, a job-signing key, and an enrolled state dir.

The real gateway is tested in tests/ops/gateway and end to end in tests/runners;
here Core is only what the runner sees of it: certificates, signed jobs and a
loopback gRPC server (tests/ops/runner/fake_gateway.py).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ops.runner.state import Identity, RunnerState
from shared import pki
from shared.domain import job_signing

TENANT = "tn_alpha"
RUNNER = "rn_one"


@dataclass
class FakeCore:
    """Core's keys, and helpers to sign jobs and issue runner certificates."""

    ca_pem: bytes
    ca_key_pem: bytes
    job_key: Ed25519PrivateKey = field(default_factory=job_signing.new_signing_key)

    @property
    def ca_sha256(self) -> str:
        return pki.fingerprint(self.ca_pem)

    def signed_job(self, **overrides: object) -> tuple[str, bytes, bytes]:
        """(job_id, payload, signature) of a job for RUNNER; fields overridable."""
        fields: dict[str, object] = {
            "job_id": f"jb_{secrets.token_hex(4)}",
            "tenant_id": TENANT,
            "runner_id": RUNNER,
            "argv": ["true"],
            "script": None,
            "shell": None,
            "env": {},
            "cwd": None,
            "timeout_seconds": 30,
            "not_after": int(time.time()) + 300,
            "nonce": secrets.token_hex(16),
        }
        fields.update(overrides)
        payload = job_signing.job_payload(**fields)  # type: ignore[arg-type]
        return str(fields["job_id"]), payload, job_signing.sign(self.job_key, payload)

    def runner_certificate(
        self, csr_pem: bytes, lifetime_s: float, runner_id: str = RUNNER
    ) -> bytes:
        return pki.issue_runner_certificate(
            csr_pem,
            self.ca_pem,
            self.ca_key_pem,
            tenant_id=TENANT,
            runner_id=runner_id,
            lifetime=timedelta(seconds=lifetime_s),
        )

    def server_credentials(self) -> tuple[bytes, bytes]:
        """(chain PEM = leaf + CA, key PEM) for a loopback server."""
        cert, key = pki.issue_server_certificate(
            self.ca_pem, self.ca_key_pem, ["127.0.0.1", "localhost"]
        )
        return cert + self.ca_pem, key


def enrolled_state(
    core: FakeCore,
    directory: Path,
    *,
    gateway: str = "127.0.0.1:1",
    enroll: str | None = None,
    lifetime_s: float = 3600,
) -> RunnerState:
    """A state dir as `runner enroll` leaves it, without a gateway."""
    state = RunnerState(directory)
    state.ensure()
    state.identity_key()
    key = pki.new_private_key()
    state.write("ca.pem", core.ca_pem)
    state.write("job-signing.pub", job_signing.public_key_raw(core.job_key))
    state.save_session_token("session-token-1")
    state.save_identity(
        Identity(
            runner_id=RUNNER,
            tenant_id=TENANT,
            gateway_address=gateway,
            enroll_address=enroll or gateway,
            labels={"role": "db"},
            cert_received_at=time.time(),
        )
    )
    certificate = core.runner_certificate(pki.create_csr(key, RUNNER), lifetime_s)
    state.save_client_certificate(certificate, pki.private_key_pem(key))
    return state
