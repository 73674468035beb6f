"""Password hashing with argon2id (argon2-cffi's defaults, rehashed when they change)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.errors import ValidationError

_hasher = PasswordHasher()

#: Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MIN_PASSWORD_LENGTH = 8


def check_strength(password: str) -> None:
    """Raise ValidationError for a password too short to accept."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters",
            errors={"password": [f"Shorter than minimum length {MIN_PASSWORD_LENGTH}."]},
        )


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    check_strength(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still spends the time of a check."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with older parameters."""
    return _hasher.check_needs_rehash(password_hash)
