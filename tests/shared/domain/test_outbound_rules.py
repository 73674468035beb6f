"""The outbound policy's pure half: which hosts and addresses a tenant's URL may reach."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest

from shared.domain.outbound import address_problem, literal_address, parse_networks

#: Every URL form that must not reach the operator's network, and the kind it is.
REFUSED_URLS = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.255.255.254:8080/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://10.255.255.255/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.255/", "private"),
    ("http://192.168.0.1/", "private"),
    ("http://192.168.255.255/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://169.254.0.1/", "link-local"),
    ("http://[::1]/", "loopback"),
    ("http://[fd00::1]/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of the metadata address
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
    ("http://2130706433/", "loopback"),  # decimal
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://0x7f.1/", "loopback"),  # hex, two parts
    ("http://0x7f000001/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "link-local"),
    ("http://2852039166/", "link-local"),  # 169.254.169.254 as one number
    ("http://0/", "unspecified"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://100.64.0.1/", "not publicly routable"),  # carrier-grade NAT
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "private"),
    ("http://255.255.255.255/", "private"),
]


@pytest.mark.parametrize(("url", "kind"), REFUSED_URLS)
def test_internal_addresses_in_every_form_are_refused(url, kind):
    address = literal_address(urlsplit(url).hostname)

    assert address is not None, f"{url} was read as a name"
    assert address_problem(address) == kind


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/",
        "https://1.1.1.1/",
        "http://172.32.0.1/",  # just past 172.16.0.0/12
        "http://172.15.255.255/",
        "http://192.169.0.1/",
        "http://[2606:4700:4700::1111]/",
        "http://134744072/",  # 8.8.8.8 as one number
    ],
)
def test_public_addresses_pass(url):
    assert address_problem(literal_address(urlsplit(url).hostname)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),  # a.b.c: the last part fills 16 bits
        ("fe80::1%eth0", "fe80::1"),
        ("[::1]", "::1"),
        # Not literals: names, or what inet_aton refuses.
        ("localhost", None),
        ("example.com", None),
        ("08.0.0.1", None),  # 8 is not an octal digit
        ("1.2.3.4.5", None),
        ("256.0.0.1", None),
        ("1.2.3.256", None),
        ("4294967296", None),  # 2**32
        ("", None),
        ("1..2", None),
        ("+1.2.3.4", None),
        ("0x", None),
    ],
)
def test_literal_address_reads_what_the_c_resolver_reads(host, address):
    expected = ipaddress.ip_address(address) if address else None
    assert literal_address(host) == expected


@pytest.mark.parametrize(
    ("allowed", "address", "problem"),
    [
        ("127.0.0.0/8", "127.0.0.1", None),
        ("127.0.0.0/8", "::ffff:127.0.0.1", None),  # the IPv4 it leads to is allowed
        ("127.0.0.0/8", "10.0.0.1", "private"),
        ("127.0.0.0/8", "::1", "loopback"),  # an IPv4 network allows no IPv6 address
        ("127.0.0.1/32", "127.0.0.2", "loopback"),
        ("10.1.0.0/16,fd00::/8", "10.1.2.3", None),
        ("10.1.0.0/16,fd00::/8", "10.2.0.1", "private"),
        ("10.1.0.0/16,fd00::/8", "fd12::1", None),
        ("", "169.254.169.254", "link-local"),
    ],
)
def test_allowed_networks_let_their_addresses_through(allowed, address, problem):
    assert address_problem(ipaddress.ip_address(address), parse_networks(allowed)) == problem


def test_parse_networks_takes_a_comma_separated_list():
    assert [str(network) for network in parse_networks(" 10.0.0.0/8 , ,fd00::/8")] == [
        "10.0.0.0/8",
        "fd00::/8",
    ]
