"""SMTP and socket failures translated into ChannelError: what went wrong, and may a retry help."""

from __future__ import annotations

import smtplib
import ssl

from plugins.email.config import EmailConfig
from shared.errors import ChannelError

#: SSL errors that mean the connection dropped, not that TLS was set up wrongly.
_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _classify(error: BaseException, config: EmailConfig) -> tuple[str, bool]:
    """(what happened, retryable): 4xx replies and lost connections are temporary."""
    where = f"SMTP server {config.address}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = error.recipients.items()
        text = "; ".join(f"{rcpt}: {_reply(code, reply)}" for rcpt, (code, reply) in replies)
        temporary = all(400 <= code < 500 for code, _ in error.recipients.values())
        return f"{where} refused the recipient ({text})", temporary
    if isinstance(error, smtplib.SMTPAuthenticationError):
        reply = _reply(error.smtp_code, error.smtp_error)
        return (
            f"{where} refused the login of {config.username!r} ({reply}); "
            "check AISOPSFLOW_SMTP_USERNAME and AISOPSFLOW_SMTP_PASSWORD",
            400 <= error.smtp_code < 500,
        )
    if isinstance(error, smtplib.SMTPResponseException):
        reply = _reply(error.smtp_code, error.smtp_error)
        return f"{where} answered {reply}", 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"{where} closed the connection ({error or 'no reason given'})", True
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return f"{where}: {error} (check AISOPSFLOW_SMTP_MODE and the login settings)", False
    if isinstance(error, smtplib.SMTPException):
        return f"{where}: {error}", False
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"{where} presented a certificate that does not verify ({error.verify_message}); "
            "set AISOPSFLOW_SMTP_VERIFY_TLS=false only for a test server",
            False,
        )
    if isinstance(error, ssl.SSLError) and not isinstance(error, _DROPPED):
        return (
            f"TLS with {where} failed ({error.reason or error}); check AISOPSFLOW_SMTP_MODE",
            False,
        )
    if isinstance(error, TimeoutError):
        return f"{where} did not answer within {config.timeout_ms / 1000:g} s", True
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
        return f"cannot reach {where} ({reason})", True
    return f"{where}: unexpected {type(error).__name__}", False


def channel_error(error: BaseException, config: EmailConfig) -> ChannelError:
    """A ChannelError for ``error``; the SMTP password never appears in its message."""
    message, retryable = _classify(error, config)
    if config.password:
        message = message.replace(config.password, "********")
    return ChannelError(f"email: {message}", retryable=retryable)
