"""Enrollment tokens: made by an admin, single use, short-lived, stored only as a SHA-256.

The answer an admin gets carries everything a host needs to enroll: the
token, the gateway's address, the SHA-256 of Core's CA (which the runner pins)
and a ready ``aisopsflow runner enroll`` command line.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shlex
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from shared import audit
from shared.db import write_transaction
from shared.errors import ValidationError
from shared.models import RunnerEnrollmentToken, utcnow
from shared.runner_keys import load_ca
from shared.settings import Settings

#: Longest an enrollment token may live, in seconds, whatever the settings say.
MAX_TOKEN_TTL_SECONDS = 600
#: Most labels a token may carry.
MAX_LABELS = 32
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    """``labels`` if every name and value is a label (letters, digits, ``_.-``); ValidationError otherwise."""
    if len(labels) > MAX_LABELS:
        raise ValidationError(f"at most {MAX_LABELS} labels, got {len(labels)}")
    problems = [
        f"{key!r}={value!r}"
        for key, value in labels.items()
        if not (
            isinstance(key, str)
            and isinstance(value, str)
            and LABEL_PATTERN.fullmatch(key)
            and LABEL_PATTERN.fullmatch(value)
        )
    ]
    if problems:
        raise ValidationError(
            "labels are name=value with letters, digits, '_', '.' or '-' (at most 63 each); "
            f"not {', '.join(problems)}",
            errors={"labels": problems},
        )
    return dict(labels)


def token_ttl_seconds(settings: Settings, requested: int | None) -> int:
    """The lifetime a new token gets: the request's, at most the setting and at most 600 s."""
    ceiling = min(settings.runner_enrollment_token_ttl_seconds, MAX_TOKEN_TTL_SECONDS)
    return ceiling if requested is None else max(1, min(requested, ceiling))


def create_token(
    tenant_id: str,
    actor: str,
    labels: Mapping[str, str],
    ttl_seconds: int | None,
    settings: Settings,
    now: datetime | None = None,
) -> tuple[str, RunnerEnrollmentToken]:
    """A new single-use token (the only time it is seen) and its row; audited without the token."""
    labels = check_labels(labels)
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = RunnerEnrollmentToken(
        tenant=tenant_id,
        token_hash=token_hash(token),
        labels_json=json.dumps(labels, sort_keys=True),
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(seconds=token_ttl_seconds(settings, ttl_seconds)),
    )
    with write_transaction():
        row.save(force_insert=True)
        audit.record(
            tenant_id,
            actor,
            "runner.enrollment_token_created",
            f"runner-enrollment-token:{row.id}",
            {"labels": labels, "expires_at": row.expires_at.isoformat()},
        )
    return token, row


def list_tokens(tenant_id: str) -> list[RunnerEnrollmentToken]:
    """The tenant's enrollment tokens (hashes only), newest first."""
    return list(
        RunnerEnrollmentToken.for_tenant(tenant_id).order_by(
            RunnerEnrollmentToken.created_at.desc()
        )
    )


def gateway_address(settings: Settings) -> str:
    """``host:port`` of the enrollment server, as runners reach it."""
    return f"{settings.resolved_gateway_host}:{settings.gateway_enroll_port}"


def enrollment_answer(token: str, row: RunnerEnrollmentToken, settings: Settings) -> dict[str, Any]:
    """What the admin gets: the token, expiry, gateway, CA SHA-256 and the enroll command line."""
    gateway = gateway_address(settings)
    ca_sha256 = load_ca(settings).sha256
    words = ["aisopsflow", "runner", "enroll", "--gateway", gateway, "--token", token]
    words += ["--ca-sha256", ca_sha256]
    for key, value in sorted(json.loads(row.labels_json).items()):
        words += ["--label", f"{key}={value}"]
    return {
        "token": token,
        "expires_at": row.expires_at,
        "gateway": gateway,
        "ca_sha256": ca_sha256,
        "command": shlex.join(words),
    }
