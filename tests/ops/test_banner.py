"""What `up` prints once its API answers: URLs, and a login hint naming an admin that exists."""

from __future__ import annotations

import pytest

from ops.banner import banner_lines, http_url
from shared.settings import Settings


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("0.0.0.0", 8080, "http://127.0.0.1:8080"),
        ("::", 80, "http://127.0.0.1:80"),
        ("::1", 80, "http://[::1]:80"),
        ("ops.example.com", 9000, "http://ops.example.com:9000"),
    ],
)
def test_http_url(host, port, url):
    assert http_url(host, port) == url


def test_banner_names_the_bootstrap_admin():
    settings = Settings(bootstrap_admin_email="Root@example.com", api_port=8123)

    lines = banner_lines(settings, ["ops@example.com", "root@example.com"])

    text = "\n".join(lines)
    assert "http://127.0.0.1:8123" in text
    assert (
        "  Log in   as root@example.com with the password in AISOPSFLOW_BOOTSTRAP_ADMIN_PASSWORD"
        " (or one of 1 other admin) (POST http://127.0.0.1:8123/api/login)"
    ) in lines
    assert "user create" not in text
    assert sum("Plugin" in line for line in lines) == 5


def test_banner_names_an_admin_made_without_the_bootstrap_settings():
    lines = banner_lines(Settings(), ["first@example.com", "b@example.com", "c@example.com"])

    text = "\n".join(lines)
    assert "Log in   as first@example.com (or one of 2 other admins)" in text
    assert "user create" not in text and "BOOTSTRAP" not in text


def test_banner_ignores_a_bootstrap_email_that_is_no_admin():
    text = "\n".join(banner_lines(Settings(bootstrap_admin_email="gone@example.com"), ["a@x.io"]))

    assert "Log in   as a@x.io (POST" in text and "gone@example.com" not in text


def test_banner_without_admin_says_how_to_create_one():
    text = "\n".join(banner_lines(Settings(bootstrap_admin_email="root@example.com")))

    assert "aisopsflow user create --email you@example.com --role admin" in text


def test_banner_names_the_runner_gateway_and_the_ca_fingerprint():
    settings = Settings(gateway_advertise_host="ops.example.com", gateway_enroll_port=7443)

    text = "\n".join(banner_lines(settings, [], "ab" * 32))

    assert "Runners  enroll at ops.example.com:7443 (TLS), connect to ops.example.com:7444" in text
    assert f"Runner CA sha256 {'ab' * 32}" in text
