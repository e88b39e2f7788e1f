"""Outgoing email: SMTP through aiosmtplib to `SMTP_URL`, or the log when it is unset.

`SMTP_URL` is `smtp://user:pass@host:port` (STARTTLS when the server offers it), or
`smtps://…` for TLS from the first byte. Query options: `from=` the sender address (default
`switchboard@<PUBLIC_URL host>`), `starttls=require|off` to insist on or skip STARTTLS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

log = logging.getLogger("switchboard.email")

SEND_TIMEOUT_SECONDS = 20.0


class MailError(Exception):
    """The email was not accepted; the caller retries later."""


@dataclass(frozen=True, slots=True)
class Email:
    to: tuple[str, ...]
    subject: str
    text: str


class Mailer(Protocol):
    async def send(self, email: Email) -> None:
        """Deliver `email` or raise MailError."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    start_tls: bool | None  # None: when the server offers it
    sender: str

    @classmethod
    def from_url(cls, url: str, default_sender: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:port")
        implicit_tls = parts.scheme == "smtps"
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        start_tls = {"require": True, "off": False}.get(options.get("starttls", ""))
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit_tls,
            start_tls=False if implicit_tls else start_tls,
            sender=options.get("from") or default_sender,
        )


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def build(self, email: Email) -> EmailMessage:
        message = EmailMessage()
        message["From"] = formataddr(("Switchboard", self.config.sender))
        message["To"] = ", ".join(email.to)
        message["Subject"] = email.subject
        message["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2] or None)
        message.set_content(email.text)
        return message

    async def send(self, email: Email) -> None:
        config = self.config
        try:
            await aiosmtplib.send(
                self.build(email),
                sender=config.sender,
                recipients=list(email.to),
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.implicit_tls,
                start_tls=config.start_tls,
                timeout=SEND_TIMEOUT_SECONDS,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc


class LogMailer:
    """No SMTP server configured: the email goes to the log instead."""

    async def send(self, email: Email) -> None:
        log.info("email to %s: %s\n%s", ", ".join(email.to), email.subject, email.text)


def make_mailer(smtp_url: str | None, public_url: str) -> Mailer:
    if not smtp_url:
        return LogMailer()
    host = urlsplit(public_url).hostname or "localhost"
    return SmtpMailer(SmtpConfig.from_url(smtp_url, default_sender=f"switchboard@{host}"))
