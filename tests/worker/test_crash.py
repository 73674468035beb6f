"""An executor's unexpected exception is logged and raised again with the step's secrets masked."""

from __future__ import annotations

import logging

from shared.errors import StepCrashed
from worker.crash import masked_crash

SECRET = "crash-canary-7f3e9a1b"


def _raise_with(text: str) -> None:
    raise ValueError(f"cannot parse {text!r}")


def test_the_log_line_and_the_error_raised_instead_carry_no_secret(caplog):
    log = logging.getLogger("tests.crash")
    try:
        try:
            _raise_with(SECRET.upper())
        except ValueError as inner:
            raise RuntimeError(f"while sending to https://x.test/{SECRET}") from inner
    except RuntimeError as error:
        crash = masked_crash(log, "step run sr_1", error, (SECRET,))

    assert isinstance(crash, StepCrashed)
    assert (
        crash.message
        == "step run sr_1 raised unexpectedly: RuntimeError: while sending to https://x.test/***"
    )
    assert (
        "_raise_with" in caplog.text and "ValueError: cannot parse '***'" in caplog.text
    )  # the traceback, chained cause too
    assert SECRET not in caplog.text.lower() and SECRET.upper() not in caplog.text
