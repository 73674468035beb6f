"""Login sessions: throttled password login, hashed bearer tokens, logout."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from shared import audit
from shared.db import write_transaction
from shared.errors import TooManyRequests, Unauthorized
from shared.models import ApiToken, LoginFailure, User, utcnow
from shared.passwords import hash_password, needs_rehash, verify_password
from shared.settings import Settings

#: The one message for an unknown email and a wrong password alike.
INVALID_CREDENTIALS = "invalid email or password"


def token_digest(token: str) -> str:
    """SHA-256 hex of a bearer token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _email_digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Session:
    """An authenticated caller."""

    user: User
    token: ApiToken


def _reserve_attempt(settings: Settings, email_hash: str) -> int:
    """Count this attempt as a failure *before* the password is checked; its row id.

    The row is committed first and the recent rows counted after, so of any number
    of parallel attempts at most ``login_max_failures`` see a count within the
    limit, on every backend and isolation level: the last of them to count would
    see all the others' committed rows. A refused attempt takes its row back, so
    hammering a locked email does not keep it locked.
    """
    now = utcnow()
    window = timedelta(seconds=settings.login_window_seconds)
    with write_transaction():
        LoginFailure.delete().where(
            LoginFailure.email_hash == email_hash, LoginFailure.failed_at < now - window
        ).execute()
        reserved = LoginFailure.create(email_hash=email_hash, failed_at=now).id
    recent = [
        row.failed_at
        for row in LoginFailure.select(LoginFailure.failed_at)
        .where(LoginFailure.email_hash == email_hash, LoginFailure.id != reserved)
        .order_by(LoginFailure.failed_at)
    ]
    if len(recent) < settings.login_max_failures:
        return reserved
    with write_transaction():
        LoginFailure.delete().where(LoginFailure.id == reserved).execute()
    # Locked until enough failures age out to bring the count below the limit.
    unlocks_at = recent[len(recent) - settings.login_max_failures] + window
    retry_after = max(1, int((unlocks_at - now).total_seconds()) + 1)
    raise TooManyRequests(
        f"too many failed logins for this email; try again in {retry_after} seconds",
        retry_after_seconds=retry_after,
    )


def login(settings: Settings, email: str, password: str) -> tuple[str, Session]:
    """Check credentials and open a session; returns (bearer token, session).

    Raises Unauthorized with one message for any wrong credential, and
    TooManyRequests once an email has too many recent failures. Every attempt
    counts as a failure until the password is found right, so parallel guesses
    cannot get past the limit.
    """
    email = email.strip().lower()
    email_hash = _email_digest(email)
    _reserve_attempt(settings, email_hash)
    user = User.get_or_none(User.email == email)
    # Verify even for an unknown email so timing does not reveal which emails exist.
    if not verify_password(user.password_hash if user else None, password):
        if user is not None:
            with write_transaction():
                audit.record(user.tenant_id, email, "auth.login_failed", f"user:{user.id}")
        raise Unauthorized(INVALID_CREDENTIALS)
    with write_transaction():
        LoginFailure.delete().where(LoginFailure.email_hash == email_hash).execute()
        if needs_rehash(user.password_hash):
            User.update(password_hash=hash_password(password)).where(User.id == user.id).execute()
        return open_session(settings, user)


def open_session(settings: Settings, user: User) -> tuple[str, Session]:
    """Issue a bearer token for an already-authenticated ``user``; audited as a login."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with write_transaction():
        row = ApiToken.create(
            tenant=user.tenant_id,
            user=user,
            token_hash=token_digest(token),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.token_ttl_seconds),
        )
        audit.record(user.tenant_id, user.email, "auth.login", f"user:{user.id}")
    return token, Session(user=user, token=row)


def authenticate(token: str) -> Session:
    """The session a bearer token belongs to; Unauthorized if unknown, revoked or expired."""
    row = (
        ApiToken.select(ApiToken, User)
        .join(User)
        .where(ApiToken.token_hash == token_digest(token))
        .first()
    )
    if row is None or row.revoked_at is not None:
        raise Unauthorized("authentication required: the token is unknown or was revoked")
    if row.expires_at <= utcnow():
        raise Unauthorized("authentication required: the token has expired; log in again")
    return Session(user=row.user, token=row)


def logout(session: Session) -> None:
    """Revoke the session's token; it answers 401 from now on."""
    with write_transaction():
        ApiToken.update(revoked_at=utcnow()).where(ApiToken.id == session.token.id).execute()
        audit.record(
            session.user.tenant_id, session.user.email, "auth.logout", f"user:{session.user.id}"
        )
