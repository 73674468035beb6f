"""Headers every API response carries so a browser treats it as data, never as a page to frame."""

from __future__ import annotations

from flask import Response, request

#: The API answers JSON: nothing in it may load, run or be framed.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
#: The Swagger UI page (``/api/docs``) loads its script and styles from the CDN and runs
#: an inline bootstrap script, and fetches the OpenAPI document from this origin.
DOCS_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://cdn.jsdelivr.net; connect-src 'self'; frame-ancestors 'none'"
)

#: The server-rendered pages (an approval link's page): inline styles, a form posting back.
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
)


def _policy(response: Response) -> str:
    if response.mimetype != "text/html":
        return API_POLICY
    return DOCS_POLICY if request.blueprint == "api-docs" else PAGE_POLICY


def add_security_headers(response: Response) -> Response:
    """Set nosniff, no framing and a content policy; no caching unless the view chose one.

    API answers hold tokens, secrets' names and run data: no shared or browser
    cache may keep them, so ``no-store`` is the default (the login answer above all).
    """
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", _policy(response))
    headers.setdefault("Referrer-Policy", "no-referrer")
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    return response
