"""What gunicorn refuses before the app runs is still the API's JSON error, on the real server.

One `aisopsflow api` (gunicorn, the JsonErrorWorker) per module; each case is written to a
raw socket, as a broken client or a scanner would send it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ops.gunicorn_worker import json_error, refusal
from shared.bootstrap import prepare
from tests.support.processes import Process
from tests.support.smtp_server import free_port

START_TIMEOUT_SECONDS = 30


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send ``raw`` and read until the server closes or one full response has arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
        return received


def _complete(received: bytes) -> bool:
    head, separator, body = received.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def parse(received: bytes) -> tuple[int, dict[str, str], Any]:
    """(status, headers with lower-case names, JSON body) of one raw response."""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert headers.get("content-type", "").startswith("application/json"), received[:500]
    return status, headers, json.loads(body)


def assert_json_error(received: bytes, status: int) -> dict[str, Any]:
    """The response is ``status`` with the API's JSON error body."""
    answered, _, body = parse(received)
    assert answered == status, received[:500]
    assert body["code"] == status and body["status"] and body["message"], body
    assert set(body) <= {"code", "status", "message", "errors"}
    return body


@pytest.fixture(scope="module")
def api_port(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[int]:
    """The API served by gunicorn exactly as `aisopsflow api` starts it."""
    from shared.settings import load_settings

    tmp_path = tmp_path_factory.mktemp("served")
    port = free_port()
    settings = load_settings(
        {
            "AISOPSFLOW_DATA_DIR": str(tmp_path / "data"),
            "AISOPSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
            "AISOPSFLOW_REDIS_URL": redis_url,
            "AISOPSFLOW_REDIS_NAMESPACE": f"t-served-{port}",
            "AISOPSFLOW_API_HOST": "127.0.0.1",
            "AISOPSFLOW_API_PORT": str(port),
            "AISOPSFLOW_API_WORKERS": "1",
        }
    )
    prepare(settings)
    process = Process(settings, ["api"], tmp_path / "api.log").start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.process.poll() is None, process.output()
            try:
                if b" 200 " in exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n", timeout=2):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.1)
        yield port
    finally:
        process.stop()


def test_an_ordinary_request_is_served(api_port: int) -> None:
    received = exchange(api_port, b"GET /api/nowhere HTTP/1.1\r\nHost: x\r\n\r\n")

    assert_json_error(received, 404)


def test_an_oversize_header_is_json_431(api_port: int) -> None:
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"

    body = assert_json_error(exchange(api_port, raw), 431)
    assert "header" in body["message"]


def test_too_many_headers_is_json_431(api_port: int) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"

    assert_json_error(exchange(api_port, raw), 431)


def test_a_long_url_is_json_414(api_port: int) -> None:
    raw = b"GET /api/workflows?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"

    body = assert_json_error(exchange(api_port, raw), 414)
    assert "URL" in body["message"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="no-http-version"),
        pytest.param(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", id="unknown-version"),
        pytest.param(b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", id="bad-method"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n", id="space-in-name"),
        pytest.param(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            id="length-not-a-number",
        ),
        pytest.param(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Content-Length: 3\r\n\r\n{}",
            id="two-lengths",
        ),
        pytest.param(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            id="length-and-chunked",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", id="folded-header"
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", id="nul-in-header"
        ),
        pytest.param(
            b"GET /api/workflows/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", id="nul-in-request-line"
        ),
        # Past gunicorn, a NUL the URL encodes is refused by the app, in the same shape.
        pytest.param(b"GET /api/workflows/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", id="encoded-nul"),
    ],
)
def test_malformed_framing_is_json_400(api_port: int, raw: bytes) -> None:
    assert_json_error(exchange(api_port, raw), 400)


def test_an_unknown_transfer_coding_is_json_501(api_port: int) -> None:
    raw = b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: snappy\r\n\r\n"

    assert_json_error(exchange(api_port, raw), 501)


def test_a_broken_chunked_body_is_json_400(api_port: int) -> None:
    # The head parses; the app finds the framing broken when it reads the body.
    raw = (
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"
    )

    body = assert_json_error(exchange(api_port, raw), 400)
    assert "chunked" in body["message"]


def test_nested_json_on_the_served_api_is_json_400(api_port: int) -> None:
    payload = b"[" * 1000
    raw = (
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(payload)
    ) + payload

    body = assert_json_error(exchange(api_port, raw), 400)
    assert "nested" in body["message"]


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("LimitRequestLine", 414),
        ("LimitRequestHeaders", 431),
        ("InvalidHeader", 400),
        ("RuntimeError", 500),
    ],
)
def test_refusal_table(name: str, status: int) -> None:
    import gunicorn.http.errors as errors

    kind: Callable[..., BaseException] = getattr(errors, name, None) or RuntimeError
    exc = kind.__new__(kind)  # the classes' constructors differ; only the class matters here
    limits = {"line": 4094, "fields": 100, "field": 8190}

    assert refusal(exc, limits)[0] == status


def test_json_error_is_one_complete_response(tmp_path: Path) -> None:
    raw = json_error(431, "too big")

    status, headers, body = parse(raw)
    assert status == 431 and headers["connection"] == "close"
    assert body == {"code": 431, "status": "Request Header Fields Too Large", "message": "too big"}
