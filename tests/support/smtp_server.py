"""A real SMTP server for tests (aiosmtpd) that keeps what it receives, and a throwaway certificate."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

#: What the server answers to RCPT TO for an address a test marked as refused.
REFUSALS = {
    451: "451 4.3.0 Mailbox temporarily unavailable, try again later",
    550: "550 5.1.1 No such user here",
}


@dataclass
class Received:
    """One accepted message: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None = None
    tls: bool = False


@dataclass
class Handler:
    """aiosmtpd handler: refuses chosen recipients, stores everything else it accepts."""

    refuse: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802
        code = self.refuse.get(address.lower())
        if code:
            return REFUSALS[code]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        login = session.auth_data.login.decode() if session.authenticated else None
        # session.ssl is set by STARTTLS only; the transport knows about implicit TLS too.
        tls = server.transport.get_extra_info("ssl_object") is not None
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message, login, tls)
            )
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1, valid one day: (cert, key) files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """The server side of TLS with the given certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in a thread: ``plain``, ``starttls`` or ``ssl``, optional AUTH."""

    def __init__(
        self,
        *,
        mode: str = "plain",
        tls_context: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.handler = Handler()
        self.mode = mode
        self.users = users
        options: dict[str, Any] = {"server_hostname": "smtp.test"}
        if mode == "starttls":
            options.update(tls_context=tls_context, require_starttls=True)
        elif mode == "ssl":
            options["ssl_context"] = tls_context
        if users is not None:
            # A real server would refuse AUTH before TLS; plain mode tests allow it.
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=mode != "plain",
            )
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        # handled=False on failure: aiosmtpd then answers 535 itself.
        return AuthResult(success=ok, handled=ok, auth_data=auth_data if ok else None)

    @property
    def received(self) -> list[Received]:
        """Messages accepted so far, oldest first."""
        with self.handler.lock:
            return list(self.handler.received)

    def refuse(self, address: str, code: int) -> None:
        """Answer RCPT TO ``address`` with 451 (temporary) or 550 (permanent) from now on."""
        self.handler.refuse[address.lower()] = code

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
