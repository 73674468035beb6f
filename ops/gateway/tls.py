"""The gateway's TLS: a server certificate from Core's CA, and the credentials of its two servers."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from shared import pki
from shared.runner_keys import RunnerCA, load_ca
from shared.settings import Settings


@dataclass(frozen=True)
class GatewayTLS:
    """Core's CA and the server certificate (PEM) both gateway servers present."""

    ca: RunnerCA
    cert_pem: bytes
    key_pem: bytes

    @property
    def chain_pem(self) -> bytes:
        """Leaf followed by the CA: a runner reads the CA from it to check its pinned SHA-256."""
        return self.cert_pem + self.ca.cert_pem

    def enroll_credentials(self) -> grpc.ServerCredentials:
        """Server-only TLS: an enrolling runner has no certificate yet."""
        return grpc.ssl_server_credentials([(self.key_pem, self.chain_pem)])

    def gateway_credentials(self) -> grpc.ServerCredentials:
        """Mutual TLS: only certificates issued by Core's CA get in."""
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.chain_pem)],
            root_certificates=self.ca.cert_pem,
            require_client_auth=True,
        )


def server_hosts(settings: Settings) -> list[str]:
    """The names the server certificate is valid for: the advertised host and loopback."""
    return [settings.resolved_gateway_host, "127.0.0.1", "localhost"]


def load_gateway_tls(settings: Settings) -> GatewayTLS:
    """Core's CA (created if missing) and a fresh server certificate issued by it."""
    ca = load_ca(settings)
    cert_pem, key_pem = pki.issue_server_certificate(
        ca.cert_pem, ca.key_pem, server_hosts(settings)
    )
    return GatewayTLS(ca, cert_pem, key_pem)
