"""The email itself: a multipart/alternative message with a text and an HTML part; no I/O here."""

from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from html import escape

from plugins.email.request import ApprovalLinks, EmailRequest

#: Said under the links in both parts, so nobody forwards or keeps them expecting reuse.
LINK_NOTE = (
    "Each link opens a confirmation page, works only once, "
    "and expires when the approval is decided or times out."
)
_BUTTON = (
    "display:inline-block;padding:10px 22px;margin:0 8px 8px 0;border-radius:4px;"
    "color:#ffffff;font-weight:bold;text-decoration:none;background:{color}"
)
_COLORS = {"critical": "#b42318", "warning": "#b54708", "info": "#175cd3"}


def text_body(request: EmailRequest) -> str:
    """The plain-text part: the message, then the two links on lines of their own."""
    lines = [request.message] if request.message else []
    if request.approval:
        links = request.approval
        lines += [
            "",
            f"Approve: {links.approve_url}",
            f"Reject:  {links.reject_url}",
            "",
            LINK_NOTE,
        ]
    return "\n".join(lines).strip() + "\n"


def _html_links(links: ApprovalLinks) -> str:
    approve = _BUTTON.format(color="#1a7f37")
    reject = _BUTTON.format(color="#b42318")
    return (
        '<p style="margin:24px 0 8px">'
        f'<a href="{escape(links.approve_url)}" style="{approve}">Approve</a>'
        f'<a href="{escape(links.reject_url)}" style="{reject}">Reject</a></p>'
        f'<p style="color:#475467;font-size:13px">{escape(LINK_NOTE)}</p>'
    )


def html_body(request: EmailRequest) -> str:
    """The HTML part: the title, the message with its line breaks kept, and the buttons."""
    color = _COLORS.get(request.severity, "#344054")
    parts = [
        '<!DOCTYPE html><html><body style="font-family:Arial,Helvetica,sans-serif;color:#101828">',
        f'<h2 style="margin:0 0 12px;color:{color}">{escape(request.subject)}</h2>',
    ]
    if request.message:
        parts.append(f'<div style="white-space:pre-wrap">{escape(request.message)}</div>')
    if request.approval:
        parts.append(_html_links(request.approval))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def compose(request: EmailRequest, *, sender: str, now: datetime | None = None) -> EmailMessage:
    """The message from ``sender`` to the request's target, with a fresh Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = request.target
    message["Subject"] = request.subject
    message["Date"] = format_datetime(now or datetime.now(timezone.utc))
    # The sender's domain, not socket.getfqdn(): that can stall on a slow resolver.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "aisopsflow.invalid"
    message["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: mark it automatic so that autoresponders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text_body(request))
    message.add_alternative(html_body(request), subtype="html")
    return message
