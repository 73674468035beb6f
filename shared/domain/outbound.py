"""Which addresses a URL a tenant controls may reach (the outbound policy). Pure.

In saas mode Core calls URLs tenants chose (http steps, Teams webhooks, Kakao providers)
and shows them the answers, so it must not be made to call into the operator's own
network: loopback, private, link-local (cloud metadata), multicast and reserved addresses
are refused unless the operator allows their network. The I/O half (resolving a name,
checking the address a socket connects to) is :mod:`shared.outbound`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: NAT64's well-known prefix (RFC 6052): a gateway turns 64:ff9b::a.b.c.d into a.b.c.d.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated CIDR list (``10.1.0.0/16,fd00::/8``); ValueError if bad."""
    return tuple(
        ipaddress.ip_network(item, strict=False)
        for item in (part.strip() for part in text.split(","))
        if item
    )


#: One part of a legacy IPv4 literal as ``inet_aton`` reads it: hex, octal or decimal.
_PART = re.compile(r"0[xX](?P<hex>[0-9a-fA-F]+)|0(?P<oct>[0-7]+)|(?P<dec>0|[1-9][0-9]*)")


def _inet_aton_part(text: str) -> int:
    """The value of one part (``0x7f``, ``0177``, ``127``); ValueError otherwise."""
    match = _PART.fullmatch(text)
    if match is None:
        raise ValueError(text)
    if match["hex"] is not None:
        return int(match["hex"], 16)
    if match["oct"] is not None:
        return int(match["oct"], 8)
    return int(match["dec"], 10)


def literal_address(host: str) -> Address | None:
    """The address ``host`` denotes when it is an IP literal, or None for a name.

    Accepts every IPv4 form the C resolver (``inet_aton``) does, since that is what
    a client library connects to: ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and
    ``127.1`` all mean 127.0.0.1. IPv6 literals may carry a zone (``fe80::1%eth0``).
    """
    host = host.strip().strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    parts = host.split(".")
    try:
        if not 1 <= len(parts) <= 4:
            raise ValueError(host)
        *leading, last = [_inet_aton_part(part) for part in parts]
    except ValueError:
        return None
    # Each leading part is one byte; the last fills the bytes they leave (a.b -> a, 24 bits).
    last_bits = 8 * (4 - len(leading))
    if any(value > 255 for value in leading) or last >= 1 << last_bits:
        return None
    number = 0
    for value in leading:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << last_bits | last)


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to (mapped, 6to4, NAT64), or None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_kind(address: Address) -> str | None:
    """What internal kind of address this is (``loopback``, ``private``...), or None if public."""
    address = embedded_ipv4(address) or address
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not publicly routable", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def is_allowed(address: Address, allowed: Sequence[Network]) -> bool:
    """True when ``address`` (or the IPv4 address it embeds) is in one of ``allowed``."""
    candidates = [address, embedded_ipv4(address)]
    return any(
        candidate in network
        for candidate in candidates
        if candidate is not None
        for network in allowed
        if candidate.version == network.version
    )


def address_problem(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why Core may not connect to ``address`` for a tenant (e.g. ``loopback``), or None."""
    if is_allowed(address, allowed):
        return None
    return address_kind(address)
