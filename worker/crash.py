"""An executor's unexpected exception, logged and raised again without the step's secrets.

Dramatiq logs the message and traceback of whatever an actor raises, and our own
``log.exception`` would too; an exception's text can quote a secret (a URL a
library refused, a value it could not parse). So the original is logged here
with the secrets masked, and a masked :class:`StepCrashed` takes its place.
"""

from __future__ import annotations

import logging
import traceback

from shared.errors import StepCrashed
from shared.redaction import mask_secrets


def masked_crash(
    log: logging.Logger, what: str, error: BaseException, known_secrets: tuple[str, ...]
) -> StepCrashed:
    """Log ``error`` (about ``what``) with its traceback, secrets masked; the error to raise instead."""
    text = "".join(traceback.format_exception(error))
    log.error("%s raised unexpectedly:\n%s", what, mask_secrets(text, known_secrets))
    summary = mask_secrets(f"{type(error).__name__}: {error}", known_secrets)
    return StepCrashed(f"{what} raised unexpectedly: {summary}")
