"""The one error hierarchy; the API maps it to HTTP in a single place (api/errors.py)."""

from __future__ import annotations

from typing import Any


class AisOpsFlowError(Exception):
    """Base of every error AisOpsFlow raises on purpose."""

    #: HTTP status the API answers with when this error reaches it.
    status_code = 500

    def __init__(self, message: str, *, errors: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class SettingsError(AisOpsFlowError):
    """A configuration value is missing or malformed; the message names the variable."""


class ValidationError(AisOpsFlowError):
    """Input was well-formed but not acceptable; ``errors`` says where."""

    status_code = 422


class BadRequest(AisOpsFlowError):
    """The request could not be understood at all."""

    status_code = 400


class PayloadTooLarge(AisOpsFlowError):
    """The request body is over the size limit."""

    status_code = 413


class UnsupportedMediaType(AisOpsFlowError):
    """The request body has a content type the route does not take."""

    status_code = 415


class Unauthorized(AisOpsFlowError):
    """No valid credentials were presented."""

    status_code = 401


class Forbidden(AisOpsFlowError):
    """The caller is authenticated but their role does not allow the action."""

    status_code = 403


class NotFound(AisOpsFlowError):
    """The resource does not exist for the caller's tenant."""

    status_code = 404


class Conflict(AisOpsFlowError):
    """The change would break a uniqueness or state rule."""

    status_code = 409


class TooManyRequests(AisOpsFlowError):
    """The caller is rate limited; ``retry_after_seconds`` says for how long."""

    status_code = 429

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailable(AisOpsFlowError):
    """A backing service (database, Redis, plugin) cannot be reached."""

    status_code = 503


class OutboundRefused(AisOpsFlowError):
    """A URL a tenant controls leads where the outbound policy forbids; the message names the setting."""

    status_code = 422


class InsufficientStorage(AisOpsFlowError):
    """The disk (or the database's storage) is full: nothing can be written until space is freed."""

    status_code = 507


class TransactionConflict(ServiceUnavailable):
    """The database kept aborting a change for conflicting with concurrent ones (deadlock, serialization failure)."""


class SecretKeyError(AisOpsFlowError):
    """A stored secret cannot be decrypted with the configured keys."""


class StepError(AisOpsFlowError):
    """A workflow step failed."""


class RetryableStepError(StepError):
    """A step failed in a way a retry may fix (timeouts, 5xx, 429)."""


class PermanentStepError(StepError):
    """A step failed in a way no retry will fix."""


class StepCrashed(StepError):
    """A step's executor raised an error it should not have; the message has the step's secrets masked."""


class ChannelError(AisOpsFlowError):
    """A notification channel or plugin failed to deliver."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
