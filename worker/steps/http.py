"""The `http` step: one request with an Idempotency-Key; the response becomes the output.

In saas mode the URL is held to the outbound policy (:mod:`shared.outbound`); redirects
are followed only when the step sets ``follow_redirects: true``.
"""

from __future__ import annotations

from typing import Any

import requests

from shared.domain.engine_rules import Outcome
from shared.domain.templating import render, render_value
from shared.errors import OutboundRefused
from shared.outbound import OutboundPolicy, tenant_session, url_origin
from shared.redaction import redact
from worker.steps.base import StepCall, StepFailure

#: Characters of a non-JSON response body kept in the output.
MAX_BODY_CHARS = 32_768
#: Seconds at most to wait for a connection (bounded by the step timeout too).
CONNECT_TIMEOUT_SECONDS = 5.0


def _expected(expect: Any, status: int) -> bool:
    if expect in (None, "2xx"):
        return 200 <= status < 300
    if isinstance(expect, int):
        return status == expect
    return status in expect


def _decode(response: requests.Response) -> Any:
    if "json" in response.headers.get("Content-Type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text[:MAX_BODY_CHARS]


def run_http(call: StepCall) -> Outcome:
    """Send the request; 2xx (or expect_status) succeeds, anything else is a StepFailure."""
    params = call.step.params
    headers = {
        name: render(value, call.context) for name, value in (params.get("headers") or {}).items()
    }
    headers["Idempotency-Key"] = f"{call.execution_id}:{call.step.id}"
    request: dict[str, Any] = {
        "method": params.get("method", "GET"),
        "url": render(params["url"], call.context),
        "headers": headers,
        "params": {
            name: render(value, call.context) for name, value in (params.get("query") or {}).items()
        },
    }
    if params.get("json") is not None:
        request["json"] = render_value(params["json"], call.context)
    elif params.get("body") is not None:
        request["data"] = render(params["body"], call.context).encode("utf-8")
    shown = {key: value for key, value in request.items() if key != "data"}
    timeout = call.step.timeout_seconds
    # saas: the URL is a tenant's; every connection (each redirect hop too) is checked.
    session = tenant_session(OutboundPolicy.for_tenants(call.settings))
    try:
        response = session.request(
            timeout=(min(CONNECT_TIMEOUT_SECONDS, timeout), timeout),
            allow_redirects=bool(params.get("follow_redirects")),
            **request,
        )
    except OutboundRefused as error:
        # Only the origin: the path or query may carry a secret (and the host one too).
        message = (
            f"{request['method']} {url_origin(request['url'])} refused by the outbound "
            f"policy: {error.message}"
        )
        known = tuple(call.context.get("secrets", {}).values())
        raise StepFailure(redact(message, known_secrets=known), input=shown) from None
    except requests.TooManyRedirects:
        raise StepFailure(
            f"{request['method']} {url_origin(request['url'])} redirected more than "
            f"{session.max_redirects} times",
            input=shown,
        ) from None
    except requests.Timeout:
        raise StepFailure(
            f"{request['method']} {request['url']} timed out after {timeout:g} s",
            reason="timeout",
            input=shown,
        ) from None
    except requests.ConnectionError as error:
        raise StepFailure(
            f"{request['method']} {request['url']} failed to connect: {type(error).__name__}",
            reason="connection",
            input=shown,
        ) from None
    except (requests.RequestException, ValueError) as error:
        # E.g. a redirect to a scheme other than http(s), or a URL or header the
        # template made invalid (MissingSchema, InvalidHeader, UnicodeEncodeError):
        # no retry changes that, and it must not reach Dramatiq, which logs its text.
        raise StepFailure(
            f"{request['method']} {url_origin(request['url'])} failed: {type(error).__name__}",
            input=shown,
        ) from None
    output = {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "body": _decode(response),
    }
    output["output"] = {key: output[key] for key in ("status_code", "headers", "body")}
    if not _expected(params.get("expect_status", "2xx"), response.status_code):
        raise StepFailure(
            f"{request['method']} {request['url']} answered HTTP {response.status_code}",
            reason=response.status_code,
            output=output,
            input=shown,
        )
    return Outcome("succeeded", output=output, input=shown)
