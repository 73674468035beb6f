"""The outbound policy at the socket: real loopback servers, real name resolution, real redirects."""

from __future__ import annotations

import datetime
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.domain.outbound import parse_networks
from shared.errors import ChannelError, OutboundRefused, ValidationError
from shared.kakao.providers import check_base_url
from shared.outbound import OutboundPolicy, check_url, tenant_session, url_origin
from shared.plugin_client import PluginClient
from tests.support.loopback import Loopback

SAAS = OutboundPolicy(enforced=True)


@pytest.fixture(scope="module")
def running_servers() -> Iterator[dict[str, Loopback]]:
    with Loopback() as v4, Loopback("127.0.0.2") as v4b, Loopback("::1") as v6:
        yield {"v4": v4, "v4b": v4b, "v6": v6}


@pytest.fixture
def servers(running_servers: dict[str, Loopback]) -> dict[str, Loopback]:
    """Loopback servers on 127.0.0.1, 127.0.0.2 and ::1: what a refused URL would have reached."""
    for server in running_servers.values():
        server.routes.clear()
        server.hits.clear()
    return running_servers


def hits(servers: dict[str, Loopback]) -> int:
    return sum(sum(len(items) for items in server.hits.values()) for server in servers.values())


#: URL forms of a loopback server; {v4}, {v4b}, {v6} are the servers' ports.
LOOPBACK_FORMS = [
    "http://127.0.0.1:{v4}/",
    "http://127.0.0.2:{v4b}/",
    "http://2130706433:{v4}/",  # decimal
    "http://0177.0.0.1:{v4}/",  # octal
    "http://0x7f.1:{v4}/",  # hex, two parts
    "http://0x7f000001:{v4}/",
    "http://127.1:{v4}/",
    "http://localhost:{v4}/",  # a name, from /etc/hosts
    "http://[::1]:{v6}/",
    "http://[::ffff:127.0.0.1]:{v4}/",
]


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
def test_every_form_of_a_loopback_server_is_refused_before_connecting(servers, form):
    url = form.format(**{name: server.port for name, server in servers.items()})
    # The form really reaches a server when nothing checks it.
    assert requests.get(url, timeout=5).status_code == 200
    before = hits(servers)

    with pytest.raises(OutboundRefused) as refused:
        tenant_session(SAAS).get(url, timeout=5)

    assert hits(servers) == before
    assert "AISOPSFLOW_OUTBOUND_ALLOWED_NETWORKS" in refused.value.message
    assert "(loopback)" in refused.value.message


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://10.0.0.1:9/", "private"),
        ("http://172.16.0.1:9/", "private"),
        ("http://192.168.0.1:9/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://169.254.169.254/", "link-local"),
        ("http://[fd00::1]:9/", "private"),
        ("http://[fe80::1]:9/", "link-local"),
        ("http://0:9/", "unspecified"),
    ],
)
def test_private_and_link_local_networks_are_refused_without_a_connection(url, kind):
    # Unchecked, these time out or fail to connect: ConnectionError, not OutboundRefused.
    with pytest.raises(OutboundRefused, match=rf"\({kind}\), an address inside the network"):
        tenant_session(SAAS).get(url, timeout=1)


def test_an_allowed_network_is_reached(servers):
    policy = OutboundPolicy(enforced=True, allowed=parse_networks("127.0.0.0/8"))

    response = tenant_session(policy).get(f"http://localhost:{servers['v4'].port}/ok", timeout=5)

    assert response.status_code == 200 and servers["v4"].count("/ok") == 1


@pytest.mark.parametrize(
    "target", ["http://127.0.0.2:{v4b}/secret", "http://2130706434:{v4b}/secret"]
)
def test_each_redirect_hop_is_checked(servers, target):
    policy = OutboundPolicy(enforced=True, allowed=parse_networks("127.0.0.1/32"))
    location = target.format(v4b=servers["v4b"].port)
    servers["v4"].route("/go", statuses=[302], headers={"Location": location})

    with pytest.raises(OutboundRefused, match="127.0.0.2 \\(loopback\\)"):
        tenant_session(policy).get(f"{servers['v4'].url}/go", timeout=5)

    assert servers["v4"].count("/go") == 1  # the first hop was allowed and made
    assert servers["v4b"].count("/secret") == 0


def test_a_redirect_within_allowed_networks_is_followed(servers):
    policy = OutboundPolicy(enforced=True, allowed=parse_networks("127.0.0.0/8"))
    servers["v4"].route("/go", statuses=[302], headers={"Location": f"{servers['v4b'].url}/secret"})

    response = tenant_session(policy).get(f"{servers['v4'].url}/go", timeout=5)

    assert response.status_code == 200 and servers["v4b"].count("/secret") == 1


class SocketCalls:
    """Name lookups and connects made by this thread, seen through Python's audit hooks."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self.calls: list[tuple[str, Any]] = []
        sys.addaudithook(self.hook)  # stays installed; records only while `thread` is set

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if threading.get_ident() == self.thread and event in (
            "socket.getaddrinfo",
            "socket.connect",
        ):
            self.calls.append((event, args[0] if event == "socket.getaddrinfo" else args[1]))


AUDIT = SocketCalls()


def test_the_name_is_resolved_once_and_the_socket_connects_to_the_checked_address(servers):
    policy = OutboundPolicy(enforced=True, allowed=parse_networks("127.0.0.0/8"))
    session = tenant_session(policy)
    AUDIT.calls.clear()
    AUDIT.thread = threading.get_ident()
    try:
        session.get(f"http://localhost:{servers['v4'].port}/once", timeout=5).close()
    finally:
        AUDIT.thread = None

    # A second lookup of the name would be a window for DNS rebinding.
    lookups = [host for event, host in AUDIT.calls if event == "socket.getaddrinfo"]
    assert lookups == ["localhost"]
    connects = [address for event, address in AUDIT.calls if event == "socket.connect"]
    assert connects == [("127.0.0.1", servers["v4"].port)]


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for the name ``localhost`` (not for 127.0.0.1) and its key, as PEM files."""
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
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_still_sends_and_verifies_the_name_of_a_checked_connection(tmp_path):
    cert_path, key_path = self_signed(tmp_path)
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    policy = OutboundPolicy(enforced=True, allowed=parse_networks("127.0.0.0/8"))
    with Loopback() as server:
        server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
        session = tenant_session(policy)

        response = session.get(f"https://localhost:{server.port}/tls", verify=str(cert_path))
        with pytest.raises(requests.exceptions.SSLError):
            # Connected to the same address, but the certificate is not 127.0.0.1's.
            session.get(f"https://127.0.0.1:{server.port}/tls", verify=str(cert_path))

    assert response.status_code == 200 and names[0] == "localhost"
    assert server.hits["/tls"][0]["headers"]["Host"] == f"localhost:{server.port}"


def test_onprem_checks_nothing(servers):
    policy = OutboundPolicy(enforced=False)

    check_url("http://169.254.169.254/", policy)
    response = tenant_session(policy).get(f"http://2130706433:{servers['v4'].port}/", timeout=5)

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://user:pw@hooks.example:8443/T0/B1/secret?token=x#f", "https://hooks.example:8443"),
        ("http://[::1]/x", "http://[::1]"),
        ("http://host:99999/x", "http://host"),
    ],
)
def test_url_origin_drops_everything_that_may_hold_a_secret(url, origin):
    assert url_origin(url) == origin


def test_a_name_that_does_not_resolve_is_refused_ahead_of_time():
    with pytest.raises(OutboundRefused, match="does not resolve"):
        check_url("http://no-such-host.invalid/", SAAS)


# ---- Kakao providers: the same policy, and the older setting still works ----------------------


@pytest.mark.parametrize(
    ("overrides", "allowed"),
    [
        ({}, False),
        ({"outbound_allowed_networks": "127.0.0.0/8"}, True),
        ({"kakao_provider_networks": "127.0.0.0/8"}, True),
        ({"outbound_allowed_networks": "10.0.0.0/8"}, False),
    ],
)
def test_a_kakao_provider_url_follows_both_settings(make_settings, overrides, allowed):
    settings = make_settings(mode="saas", **overrides)

    if allowed:
        check_base_url("http://127.0.0.1:9", settings)
    else:
        with pytest.raises(ValidationError, match="AISOPSFLOW_KAKAO_PROVIDER_NETWORKS"):
            check_base_url("http://127.0.0.1:9", settings)


def test_a_kakao_send_connects_through_the_policy(make_settings, servers):
    settings = make_settings(mode="saas")
    plugins = PluginClient(settings)

    with pytest.raises(ChannelError, match="refused: host 'localhost'") as refused:
        plugins.post_url(
            f"http://localhost:{servers['v4'].port}/kakao/alimtalk/send",
            {},
            timeout_seconds=5,
            who="Kakao provider 'relay'",
            token="tenant-token",
            outbound=OutboundPolicy.for_kakao_providers(settings),
        )

    assert refused.value.retryable is False
    assert hits(servers) == 0
