"""Calls to URLs a tenant controls, held to the outbound policy when the socket connects.

:mod:`shared.domain.outbound` says which addresses are off limits; this module does the
I/O. A host is resolved once, every address it resolves to is checked, and the socket
connects to one of those checked addresses, so a name re-pointed between the check and
the connection (DNS rebinding) reaches nothing new. TLS still sends and verifies the
name. A redirect hop is a new connection and is checked the same way.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from shared.domain.outbound import Network, address_problem, literal_address, parse_networks
from shared.errors import OutboundRefused
from shared.settings import PREFIX, Settings

#: The setting that allows networks for every URL a tenant controls.
ALLOWED_SETTING = PREFIX + "OUTBOUND_ALLOWED_NETWORKS"
#: The extra setting for Kakao providers (kept from before the general one).
KAKAO_SETTING = PREFIX + "KAKAO_PROVIDER_NETWORKS"
#: Most redirect hops a tenant's request may follow when it asks to follow them.
MAX_REDIRECTS = 10


@dataclass(frozen=True)
class OutboundPolicy:
    """Whether tenant URLs are checked (saas mode), and the internal networks allowed anyway."""

    enforced: bool
    allowed: tuple[Network, ...] = ()
    #: What a refusal tells the operator to set to allow a network.
    setting: str = ALLOWED_SETTING

    @classmethod
    def for_tenants(cls, settings: Settings) -> OutboundPolicy:
        """The policy for http steps and Teams webhook URLs."""
        return cls(
            enforced=settings.mode == "saas",
            allowed=parse_networks(settings.outbound_allowed_networks),
        )

    @classmethod
    def for_kakao_providers(cls, settings: Settings) -> OutboundPolicy:
        """The tenant policy plus ``AISOPSFLOW_KAKAO_PROVIDER_NETWORKS``."""
        general = cls.for_tenants(settings)
        return cls(
            enforced=general.enforced,
            allowed=general.allowed + parse_networks(settings.kakao_provider_networks),
            setting=f"{ALLOWED_SETTING} or {KAKAO_SETTING}",
        )


def _refused(policy: OutboundPolicy, host: str, address: str, kind: str) -> OutboundRefused:
    return OutboundRefused(
        f"host {host!r} resolves to {address} ({kind}), an address inside the network; "
        "in saas mode AisOpsFlow does not connect there for a tenant "
        f"(the operator can allow a network with {policy.setting})"
    )


def checked_addresses(host: str, port: int, policy: OutboundPolicy) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` results for ``host``, resolved once; OutboundRefused if any is off limits.

    All of them are checked, not only the first: a client falls back to the next
    address when one does not answer. ``socket.gaierror`` when the name does not resolve.
    """
    literal = literal_address(host)
    lookup = str(literal) if literal is not None else host
    infos = socket.getaddrinfo(lookup, port, allowed_gai_family(), socket.SOCK_STREAM)
    if policy.enforced:
        for info in infos:
            check_address(info[4][0], host, policy)
    return infos


def check_address(address: str, host: str, policy: OutboundPolicy) -> None:
    """OutboundRefused when the policy forbids connecting to ``address`` (``host``'s)."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    kind = address_problem(parsed, policy.allowed)
    if policy.enforced and kind is not None:
        raise _refused(policy, host, str(parsed), kind)


def check_url(url: str, policy: OutboundPolicy) -> None:
    """OutboundRefused unless every address ``url``'s host resolves to may be called.

    A check ahead of time (registration, before handing a URL to a plugin); the
    connection itself is checked again by :func:`tenant_session`. Does nothing (and
    resolves nothing) when the policy is not enforced.
    """
    if not policy.enforced:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundRefused(f"host {host!r} has a port that is not a number") from None
    try:
        checked_addresses(host, port, policy)
    except (socket.gaierror, UnicodeError):
        raise OutboundRefused(f"host {host!r} does not resolve") from None


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what an error may show (a path or query may hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


class _CheckedConnectionMixin:
    """Opens the socket to an address the policy allows, the one it checked."""

    outbound_policy: OutboundPolicy
    # Provided by urllib3's HTTPConnection.
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            infos = checked_addresses(self.host, self.port, self.outbound_policy)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        last: OSError = OSError(f"{self.host!r} resolves to no address")
        for family, kind, proto, _canonical, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                # urllib3 passes a sentinel for "the socket default": leave that alone.
                if self.timeout is None or isinstance(self.timeout, (int, float)):
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(address)
                # What the socket is connected to, not what was asked: the last word.
                check_address(sock.getpeername()[0], self.host, self.outbound_policy)
                return sock
            except TimeoutError as error:
                sock.close()
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from error
            except OSError as error:
                sock.close()
                last = error
            except BaseException:
                sock.close()
                raise
        raise NewConnectionError(self, f"Failed to establish a new connection: {last}") from last


class _CheckedAdapter(HTTPAdapter):
    """A requests adapter whose connections go through :class:`_CheckedConnectionMixin`."""

    def __init__(self, policy: OutboundPolicy) -> None:
        attributes = {"outbound_policy": policy}
        http = type("CheckedHTTPConnection", (_CheckedConnectionMixin, HTTPConnection), attributes)
        https = type(
            "CheckedHTTPSConnection", (_CheckedConnectionMixin, HTTPSConnection), attributes
        )
        self._pool_classes = {
            "http": type("CheckedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("CheckedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy, the proxy would resolve the name where it cannot be checked.
        raise OutboundRefused("a URL a tenant controls is not fetched through a proxy")


@functools.lru_cache(maxsize=8)
def tenant_session(policy: OutboundPolicy) -> requests.Session:
    """A shared session for URLs a tenant controls (one per policy).

    Enforced: every connection, redirect hops included, is checked; the environment's
    proxies and ``.netrc`` are ignored (a proxy would resolve the name unchecked, and
    ``.netrc`` credentials must not go to a tenant's host). Not enforced (onprem): a
    plain session, as before.
    """
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    if policy.enforced:
        session.trust_env = False
        adapter = _CheckedAdapter(policy)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session
