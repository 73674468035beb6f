"""Delivery over SMTP with smtplib: plain, STARTTLS or implicit TLS, with an optional login."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from typing import Any

from plugins.email.config import EmailConfig
from plugins.email.failures import channel_error
from plugins.email.message import compose
from plugins.email.request import EmailRequest

log = logging.getLogger(__name__)


class EmailChannel:
    """Sends one message per ``deliver`` call on a fresh SMTP connection.

    A connection per message keeps nothing open between alerts, which may be hours
    apart; every socket operation is bounded by ``config.timeout_ms``.
    """

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS context: verifying by default, permissive only when configured."""
        context = ssl.create_default_context()
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> smtplib.SMTP:
        """An SMTP session ready for MAIL FROM: TLS set up and logged in as configured."""
        config, timeout = self.config, self.config.timeout_ms / 1000
        if config.mode == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=timeout, context=self.tls_context()
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
        try:
            if config.mode == "starttls":
                smtp.starttls(context=self.tls_context())
            if config.username:
                smtp.login(config.username, config.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def deliver(self, payload: Mapping[str, Any]) -> str:
        """Send the ``/send`` payload; returns the Message-ID, raises ChannelError."""
        request = EmailRequest.from_payload(payload)
        message = compose(request, sender=self.config.sender)
        try:
            smtp = self.connect()
        except (smtplib.SMTPException, OSError) as error:
            raise channel_error(error, self.config) from error
        try:
            smtp.send_message(
                message, from_addr=self.config.sender_address, to_addrs=[request.target]
            )
        except (smtplib.SMTPException, OSError) as error:
            raise channel_error(error, self.config) from error
        finally:
            _quit(smtp)
        log.info("sent %s to %s via %s", message["Message-ID"], request.target, self.config.address)
        return message["Message-ID"]


def _quit(smtp: smtplib.SMTP) -> None:
    """Say QUIT, ignoring failures: the message is accepted or refused by then."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
