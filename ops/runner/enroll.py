"""Enrollment: pin Core's CA by fingerprint, then trade a token and a CSR for a certificate.

First contact trusts nothing: a plain TLS handshake with verification off reads
the chain the enroll server presents (leaf + CA), and the CA certificate's
SHA-256 must equal the ``--ca-sha256`` the admin handed out (kubeadm's
discovery-token CA hash works the same way). Only then is a verified gRPC
channel opened with that CA as its only root, and the token sent over it.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ops.rpc import runner_pb2, runner_pb2_grpc
from ops.runner import inventory
from ops.runner.state import Identity, RunnerState
from shared import pki
from shared.domain import job_signing

#: Seconds the first handshake and the Enroll call may take.
ENROLL_TIMEOUT_SECONDS = 15
#: Port of the RunnerGateway server when an enrollment answer names none.
DEFAULT_GATEWAY_PORT = 7444
#: Seconds the renewal hook may run.
HOOK_TIMEOUT_SECONDS = 120


class EnrollError(RuntimeError):
    """Enrollment failed; the message is one line an operator can act on."""


def split_address(address: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EnrollError(f"--gateway {address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _unverified_chain(host: str, port: int) -> list[bytes]:
    """The DER certificates the server presents, unverified (we have no trust anchor yet)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=ENROLL_TIMEOUT_SECONDS) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                # The whole presented chain, not just the leaf getpeercert() gives: public as
                # SSLSocket.get_unverified_chain() from Python 3.13, on the C object since 3.10.
                if hasattr(tls, "get_unverified_chain"):
                    chain = tls.get_unverified_chain()
                else:
                    chain = tls._sslobj.get_unverified_chain()  # type: ignore[union-attr]
    except (OSError, ssl.SSLError) as error:
        raise EnrollError(f"cannot reach the gateway at {host}:{port}: {error}") from None
    return [
        c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
        for c in chain or []
    ]


def _self_signed(der: bytes) -> bool:
    certificate = x509.load_der_x509_certificate(der)
    return certificate.issuer == certificate.subject


def pin_ca(host: str, port: int, expected_sha256: str) -> bytes:
    """Core's CA certificate (PEM) if its SHA-256 is ``expected_sha256``; EnrollError otherwise."""
    expected = expected_sha256.strip().lower().removeprefix("sha256:").replace(":", "")
    roots = [der for der in _unverified_chain(host, port) if _self_signed(der)]
    if not roots:
        raise EnrollError(
            f"the gateway at {host}:{port} presented no CA certificate to check --ca-sha256 against"
        )
    presented = hashlib.sha256(roots[-1]).hexdigest()
    if presented != expected:
        raise EnrollError(
            f"CA fingerprint mismatch: expected {expected}, gateway presented {presented}"
        )
    return x509.load_der_x509_certificate(roots[-1]).public_bytes(serialization.Encoding.PEM)


def _refusal(error: grpc.RpcError, address: str) -> EnrollError:
    """The gateway's own message for a refusal; a transport problem says where."""
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else "") or str(code)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return EnrollError(f"cannot reach the gateway at {address}: {details}")
    return EnrollError(details)


def _call_enroll(
    address: str, ca_pem: bytes, request: runner_pb2.EnrollRequest
) -> runner_pb2.EnrollResponse:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    with grpc.secure_channel(address, credentials) as channel:
        stub = runner_pb2_grpc.EnrollmentStub(channel)
        try:
            return stub.Enroll(request, timeout=ENROLL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            raise _refusal(error, address) from None


def _store(
    state: RunnerState,
    response: runner_pb2.EnrollResponse,
    key_pem: bytes,
    enroll_address: str,
    labels: dict[str, str],
) -> None:
    gateway_address = response.gateway_address
    if not gateway_address:
        # An older gateway that does not say: its documented default port on the same host.
        gateway_address = f"{split_address(enroll_address)[0]}:{DEFAULT_GATEWAY_PORT}"
    if state.is_enrolled() and state.identity().runner_id != response.runner_id:
        # A new runner in an old state dir: the old runner's unsent items are not this one's.
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state.outbox_path}{suffix}").unlink(missing_ok=True)
    state.write("ca.pem", response.ca_certificate_pem)
    state.write("job-signing.pub", response.job_signing_public_key)
    state.save_session_token(response.session_token)
    state.save_identity(
        Identity(
            runner_id=response.runner_id,
            tenant_id=response.tenant_id,
            gateway_address=gateway_address,
            enroll_address=enroll_address,
            labels=labels,
            cert_received_at=time.time(),
        )
    )
    state.save_client_certificate(response.certificate_pem, key_pem)


def enroll(
    state: RunnerState, gateway: str, token: str, ca_sha256: str, labels: dict[str, str]
) -> str:
    """Enroll with a fresh token; stores keys, certificate and ids; returns the runner id."""
    host, port = split_address(gateway)
    ca_pem = pin_ca(host, port, ca_sha256)
    state.ensure()
    identity_key = state.identity_key()
    tls_key = pki.new_private_key()
    request = runner_pb2.EnrollRequest(
        token=token,
        csr_pem=pki.create_csr(tls_key, "aisopsflow-runner"),
        identity_public_key=job_signing.public_key_raw(identity_key),
        inventory=inventory.collect(labels),
        labels=labels,
    )
    response = _call_enroll(gateway, ca_pem, request)
    _store(state, response, pki.private_key_pem(tls_key), gateway, labels)
    return response.runner_id


def reenroll(state: RunnerState, token: str) -> str:
    """Re-enroll under the stored runner id, proven by the identity key (the fallback hook's path)."""
    identity = state.identity()
    identity_key = state.identity_key()
    tls_key = pki.new_private_key()
    csr_pem = pki.create_csr(tls_key, identity.runner_id)
    proof = job_signing.sign(
        identity_key,
        job_signing.reenroll_proof_message(
            identity.runner_id, token, hashlib.sha256(csr_pem).hexdigest()
        ),
    )
    request = runner_pb2.EnrollRequest(
        token=token,
        csr_pem=csr_pem,
        identity_public_key=job_signing.public_key_raw(identity_key),
        inventory=inventory.collect(identity.labels),
        labels=identity.labels,
        runner_id=identity.runner_id,
        proof=proof,
    )
    # The CA was pinned at first enrollment; it stays the only root trusted.
    response = _call_enroll(identity.enroll_address, state.ca_pem(), request)
    if response.runner_id != identity.runner_id:
        raise EnrollError(
            f"re-enrollment answered runner {response.runner_id}, expected {identity.runner_id}"
        )
    _store(state, response, pki.private_key_pem(tls_key), identity.enroll_address, identity.labels)
    return response.runner_id


def run_renewal_hook(command: str) -> str:
    """Run the operator's hook (a shell command); the first line of its stdout is a fresh token."""
    try:
        # The operator's own command line, from their settings: a shell is what they wrote it for.
        completed = subprocess.run(  # noqa: S602
            command,
            shell=True,
            capture_output=True,
            timeout=HOOK_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EnrollError(f"the renewal hook ran longer than {HOOK_TIMEOUT_SECONDS} s") from None
    if completed.returncode != 0:
        raise EnrollError(f"the renewal hook exited with {completed.returncode}")
    lines = completed.stdout.decode(errors="replace").strip().splitlines()
    if not lines or not lines[0].strip():
        raise EnrollError("the renewal hook printed no enrollment token")
    return lines[0].strip()
