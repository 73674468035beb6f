"""Email approval links: a confirmation page (GET) and the decision (POST), no login needed.

The link itself is the credential: signed, for one person and one decision, expiring
with the approval; a second use changes nothing.
"""

from __future__ import annotations

import html
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.auth import public
from api.body_checks import ANY_TYPE, accepts
from shared.approval_links import read_token
from shared.engine import outbox
from shared.engine.approvals import Approver, resolve
from shared.errors import NotFound
from shared.keyring import load_keys
from shared.models import Approval

blp = Blueprint(
    "approval_links", __name__, url_prefix="/api/approval-links", description="Email approval links"
)

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>AisOpsFlow approval</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">{body}</body></html>"""


def _claim(token: str) -> tuple[Any, Approval]:
    claim = read_token(load_keys(current_app.config["SETTINGS"]), token)
    approval = Approval.get_or_none(Approval.id == claim.approval_id)
    if approval is None:
        raise NotFound("this approval link is not valid")
    return claim, approval


def _page(body: str, status: int = 200) -> Any:
    return current_app.response_class(PAGE.format(body=body), status=status, mimetype="text/html")


@blp.route("/<string:token>", methods=["GET"])
@blp.response(200, description="An HTML page asking to confirm the decision")
@public
def confirm(token: str) -> Any:
    """Show what the link decides and a button to confirm it (a GET never decides: mail scanners follow links)."""
    claim, approval = _claim(token)
    verb = "Approve" if claim.decision == "approve" else "Reject"
    return _page(
        f"<h1>{verb} step {html.escape(approval.step_id)}?</h1>"
        f"<p>{html.escape(approval.message)}</p><p>As {html.escape(claim.email)}.</p>"
        f'<form method="post"><button type="submit">{verb}</button></form>'
    )


@blp.route("/<string:token>", methods=["POST"])
@blp.doc(
    requestBody={
        "required": False,
        "content": {"application/x-www-form-urlencoded": {"schema": {}}},
    }
)
@blp.response(200, description="An HTML page saying what was decided")
@accepts(ANY_TYPE)
@public
def decide(token: str) -> Any:
    """Record the link's decision for its person (once; later uses change nothing)."""
    claim, approval = _claim(token)
    approver = Approver(
        f"email:{claim.email}", channel="email", address_field="email", address=claim.email
    )
    resolved, wakeups = resolve(
        approval.tenant_id, approval.execution_id, approval.step_id, approver, claim.decision
    )
    outbox.send(current_app.extensions["aisopsflow.dispatcher"], wakeups)
    return _page(
        f"<h1>Recorded: {html.escape(claim.decision)}</h1><p>The approval is now {html.escape(resolved.status)}.</p>"
    )
