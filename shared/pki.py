"""X.509 for the runner plane: Core's CA, runner CSRs and certificates, fingerprints.

Pure functions over PEM bytes (no files, no database), so the runner agent can
use the CSR half without Core's code. Keys are ECDSA P-256: grpcio's TLS
handshake fails with Ed25519 certificates. A runner certificate names its
tenant and runner id in one URI SAN, ``aisopsflow://runner/<tenant>/<runner>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Scheme and authority of the URI SAN a runner certificate carries.
RUNNER_URI_PREFIX = "aisopsflow://runner/"
#: How far back a new certificate's validity starts, for hosts whose clocks run a little behind.
CLOCK_SKEW = timedelta(minutes=5)


class CertificateError(ValueError):
    """A CSR or certificate that cannot be used; the message says why."""


@dataclass(frozen=True)
class RunnerName:
    """Whom a runner certificate was issued to."""

    tenant_id: str
    runner_id: str


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM (the caller stores it 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """Read an ECDSA private key from PEM."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("expected an ECDSA private key")
    return key


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_ca(
    common_name: str = "AisOpsFlow runner CA", *, days: int = 3650
) -> tuple[bytes, bytes]:
    """A new self-signed CA: (certificate PEM, private key PEM)."""
    key = new_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


def create_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    """A CSR (PEM) for ``key``; Core decides the names the certificate carries."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "runner")])
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as error:
        raise CertificateError(f"the CSR is not valid PEM: {error}") from None
    if not csr.is_signature_valid:
        raise CertificateError("the CSR's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CertificateError("the CSR's key must be ECDSA P-256")
    return csr


def runner_uri(tenant_id: str, runner_id: str) -> str:
    """The URI SAN of a runner's certificate."""
    return f"{RUNNER_URI_PREFIX}{tenant_id}/{runner_id}"


def issue_runner_certificate(
    csr_pem: bytes,
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    *,
    tenant_id: str,
    runner_id: str,
    lifetime: timedelta,
    now: datetime | None = None,
) -> bytes:
    """A client certificate (PEM) for the CSR's key, naming the runner in a URI SAN."""
    csr = _load_csr(csr_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = load_private_key(ca_key_pem)
    now = now or _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, runner_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(runner_uri(tenant_id, runner_id))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def issue_server_certificate(
    ca_cert_pem: bytes, ca_key_pem: bytes, hosts: list[str], *, days: int = 365
) -> tuple[bytes, bytes]:
    """The gateway's TLS certificate for ``hosts`` (names or IP addresses): (cert PEM, key PEM)."""
    import ipaddress

    key = new_private_key()
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = load_private_key(ca_key_pem)
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


def fingerprint(certificate_pem_or_der: bytes) -> str:
    """SHA-256 of the certificate's DER encoding, lower-case hex (what ``openssl x509 -fingerprint -sha256`` shows, without colons)."""
    if certificate_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        der = x509.load_pem_x509_certificate(certificate_pem_or_der).public_bytes(
            serialization.Encoding.DER
        )
    else:
        der = certificate_pem_or_der
    return hashlib.sha256(der).hexdigest()


def not_after(certificate_pem: bytes) -> datetime:
    """When the certificate expires (aware UTC)."""
    return x509.load_pem_x509_certificate(certificate_pem).not_valid_after_utc


def not_before(certificate_pem: bytes) -> datetime:
    """When the certificate's validity starts (aware UTC)."""
    return x509.load_pem_x509_certificate(certificate_pem).not_valid_before_utc


def runner_name(certificate_pem_or_der: bytes) -> RunnerName:
    """The tenant and runner a certificate was issued to; CertificateError when it names none."""
    if certificate_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        certificate = x509.load_pem_x509_certificate(certificate_pem_or_der)
    else:
        certificate = x509.load_der_x509_certificate(certificate_pem_or_der)
    try:
        uris = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    for uri in uris:
        if uri.startswith(RUNNER_URI_PREFIX):
            tenant_id, _, runner_id = uri[len(RUNNER_URI_PREFIX) :].partition("/")
            if tenant_id and runner_id and "/" not in runner_id:
                return RunnerName(tenant_id, runner_id)
    raise CertificateError("the certificate names no runner")
