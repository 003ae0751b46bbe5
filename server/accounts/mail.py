"""Mail over SMTP: the password-reset message and the one function that hands a message to the server.

`ROOMCAST_SMTP_URL` says where: `smtp://user:pass@host:port` (plain, port 25 by default),
`smtps://...` (implicit TLS, port 465 by default), `smtp://...?starttls=true` (STARTTLS after
connecting). Only the job worker calls `send` (`server.accounts.jobs`): a request never waits on
a mail server, and a mail server that is down delays mail (the job is retried) instead of losing it.
`smtplib` is blocking, so a send runs in a thread with a timeout.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from server.settings import Settings

SMTP_TIMEOUT_S = 20.0
RESET_VALID_MINUTES = 30


class MailNotConfigured(RuntimeError):
    """`ROOMCAST_SMTP_URL` is unset: nothing can be sent."""


def reset_link(settings: Settings, token: str) -> str:
    """`<ROOMCAST_PUBLIC_URL>/reset#token=...`: the token travels in the fragment, so no server or proxy logs it."""
    return f"{settings.public_url.rstrip('/')}/reset#token={token}"


def reset_message(settings: Settings, *, to: str, display_name: str, link: str) -> EmailMessage:
    """The reset mail: a plain-text part and an HTML part, with `Date` and `Message-ID`."""
    message = EmailMessage()
    message["Subject"] = "Reset your roomcast password"
    message["From"] = settings.mail_from
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid("reset", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"Hello {display_name},\n\n"
        "Someone (hopefully you) asked to reset the password of your roomcast account.\n"
        "Open this link to choose a new password:\n\n"
        f"{link}\n\n"
        f"The link expires in {RESET_VALID_MINUTES} minutes and works once. If you did not ask for it,\n"
        "ignore this mail: your password stays as it is.\n"
    )
    safe_name, safe_link = html.escape(display_name), html.escape(link, quote=True)
    message.add_alternative(
        '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5">'
        f"<p>Hello {safe_name},</p>"
        "<p>Someone (hopefully you) asked to reset the password of your roomcast account.</p>"
        f'<p><a href="{safe_link}" style="display: inline-block; padding: 0.6em 1.2em; background: #3446d4; '
        'color: #fff; border-radius: 6px; text-decoration: none">Choose a new password</a></p>'
        f'<p>Or copy this link into your browser:<br><a href="{safe_link}">{safe_link}</a></p>'
        f"<p>The link expires in {RESET_VALID_MINUTES} minutes and works once. If you did not ask for it, "
        "ignore this mail: your password stays as it is.</p>"
        "</body></html>",
        subtype="html",
    )
    return message


async def send(settings: Settings, message: EmailMessage) -> None:
    """Hand `message` to the SMTP server of `settings`; raises (for the job to retry) if that fails."""
    if settings.smtp_url is None:
        raise MailNotConfigured("ROOMCAST_SMTP_URL is not set")
    await asyncio.to_thread(_send_blocking, settings.smtp_url, message)


def _send_blocking(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    starttls = parse_qs(parts.query).get("starttls") == ["true"]
    host = parts.hostname or "localhost"
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(host, parts.port or 465, timeout=SMTP_TIMEOUT_S, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT_S)
    with client:
        if starttls:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
