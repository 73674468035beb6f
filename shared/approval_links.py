"""Signed, single-use approval links for email: approve or reject without logging in.

A token carries (approval id, decision, email, expiry) and an HMAC-SHA256 made with a
key derived from the secret-key ring, so any key of the ring verifies it (rotation
safe). Single use comes from the database: one decision per person per approval.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from shared.errors import NotFound


@dataclass(frozen=True)
class LinkClaim:
    """What a valid link says."""

    approval_id: str
    decision: str
    email: str
    expires_at: float  # epoch seconds


def _signing_key(secret_key: bytes) -> bytes:
    return hashlib.sha256(b"aisopsflow approval links\x00" + secret_key).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret_key: bytes, claim: LinkClaim) -> str:
    """A URL-safe token for ``claim`` signed with ``secret_key``."""
    body = _encode(
        json.dumps([claim.approval_id, claim.decision, claim.email, int(claim.expires_at)]).encode()
    )
    signature = _encode(
        hmac.new(_signing_key(secret_key), body.encode("ascii"), hashlib.sha256).digest()
    )
    return f"{body}.{signature}"


def read_token(secret_keys: list[bytes], token: str, *, now: float | None = None) -> LinkClaim:
    """The claim of a valid, unexpired token; NotFound for anything else (says nothing more)."""
    body, _, signature = token.partition(".")
    try:
        presented = _decode(signature)
        valid = any(
            hmac.compare_digest(
                presented,
                hmac.new(_signing_key(key), body.encode("ascii"), hashlib.sha256).digest(),
            )
            for key in secret_keys
        )
        approval_id, decision, email, expires_at = (
            json.loads(_decode(body)) if valid else (None,) * 4
        )
    except (ValueError, TypeError, UnicodeError):
        valid = False
    if not valid or decision not in ("approve", "reject"):
        raise NotFound("this approval link is not valid")
    if (now or time.time()) > expires_at:
        raise NotFound("this approval link has expired")
    return LinkClaim(approval_id, decision, email, expires_at)
