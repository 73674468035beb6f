"""gunicorn's gthread worker, answering the requests gunicorn refuses itself in JSON, not HTML.

gunicorn parses the request line and headers before any app runs, and answers what it
cannot parse (an oversize header, a long URL, broken framing) with an HTML page through
``handle_error``. This worker writes the API's error shape ``{code, status, message}``
instead, so every answer a client gets is JSON.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from datetime import datetime
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http.errors import ParseException
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker

#: How long an error answer waits for the client to close, in milliseconds.
LINGER_MS = 1000
#: Most bytes read and dropped while waiting.
LINGER_MAX_BYTES = 1024 * 1024

#: Status and message for gunicorn's own parse errors, by class name (names are stable
#: across gunicorn releases; not every release has every class).
_REFUSALS = {
    "LimitRequestLine": (
        414,
        "the request line is over {line} bytes; shorten the URL (put data in the body)",
    ),
    "LimitRequestHeaders": (
        431,
        "the request headers are over the limit of {fields} headers of {field} bytes each",
    ),
    "UnsupportedTransferCoding": (501, "the Transfer-Encoding is not supported; send chunked"),
    "InvalidRequestLine": (400, "the request line is malformed; expected METHOD /path HTTP/1.1"),
    "InvalidRequestMethod": (400, "the request method is not a valid HTTP method"),
    "InvalidHTTPVersion": (400, "the HTTP version is not supported; use HTTP/1.0 or HTTP/1.1"),
    "InvalidHeader": (400, "a header is malformed, or Content-Length and framing disagree"),
    "InvalidHeaderName": (400, "a header name is malformed"),
    "ObsoleteFolding": (400, "a header is folded over lines, which HTTP/1.1 does not allow"),
    "InvalidSchemeHeaders": (400, "the forwarded scheme headers contradict each other"),
    "InvalidProxyLine": (400, "the PROXY protocol line is malformed"),
    "ForbiddenProxyRequest": (403, "PROXY protocol requests are not allowed from this address"),
    "ConfigurationProblem": (500, "the server is misconfigured; the server log has the details"),
}


def refusal(exc: BaseException, limits: dict[str, int]) -> tuple[int, str]:
    """The status and message to answer ``exc`` with; ``limits`` fills in the figures."""
    for kind in type(exc).__mro__:
        if kind.__name__ in _REFUSALS:
            status, message = _REFUSALS[kind.__name__]
            return status, message.format(**limits)
    if isinstance(exc, ParseException):
        return 400, "the request could not be parsed as HTTP/1.1"
    if isinstance(exc, ssl.SSLError):
        return 403, "the TLS handshake failed"
    return 500, "internal error; the server log has the details"


def json_error(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying the API's JSON error body; closes the connection."""
    phrase = HTTPStatus(status).phrase
    body = json.dumps({"code": status, "status": phrase, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorWorker(ThreadWorker):
    """A gthread worker whose error answers are the API's JSON error shape."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Log as gunicorn does, then answer ``exc`` with JSON instead of an HTML page."""
        request_start = datetime.now()
        addr = addr or ("", -1)  # a unix socket has no peer address
        limits = {
            "line": self.cfg.limit_request_line,
            "fields": self.cfg.limit_request_fields,
            "field": self.cfg.limit_request_field_size,
        }
        status, message = refusal(exc, limits)
        if status >= 500:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            # The class, not str(exc): gunicorn's messages quote raw header lines.
            self.log.warning("Invalid request from ip=%s: %s", addr[0], type(exc).__name__)
        try:
            util.write_nonblock(client, json_error(status, message))
            _linger(client)
        except Exception:  # noqa: BLE001 - the client may be gone; nothing left to tell it
            self.log.debug("Failed to send error message.")
        # A header error carries the request it was parsing (other errors' .req is text).
        req = req or getattr(exc, "req", None)
        if hasattr(req, "body"):
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"] = addr[0]
            environ["REMOTE_PORT"] = str(addr[1])
            response = Response(req, client, self.cfg)
            response.status = f"{status} {HTTPStatus(status).phrase}"
            response.response_length = len(message)
            self.log.access(response, req, environ, datetime.now() - request_start)


def _linger(client: socket.socket) -> None:
    """Half-close, then read what the client still sends, until it closes (bounded).

    Closing a socket with unread input makes the kernel send a reset, and a reset makes
    the client's kernel drop the answer it has not read yet: the client would see
    "connection reset" instead of the JSON error.
    """
    client.shutdown(socket.SHUT_WR)
    client.settimeout(LINGER_MS / 1000)
    deadline = time.monotonic() + LINGER_MS / 1000
    read = 0
    while time.monotonic() < deadline and read < LINGER_MAX_BYTES:
        chunk = client.recv(65536)
        if not chunk:
            return
        read += len(chunk)
