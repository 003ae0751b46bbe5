"""Password reset by email: the request, the token, and spending it.

- `POST /auth/password-reset` answers 202 after the same work whether or not the email has an
  account: count the attempt (5 per email, 50 per client address, per hour) and enqueue one mail
  job. The job worker looks the account up; the request never touches the `users` table, so
  neither the answer nor its timing tells an account apart from a stranger.
- A token is 32 bytes: `HMAC-SHA256(secret key, "password-reset:" + nonce)` with a fresh random
  nonce per request. The job carries the nonce, never the token, and a retried job derives the
  same token again (one link per request, however many attempts the mail takes); PostgreSQL keeps
  only the token's SHA-256. Each request is its own token with its own 30 minutes: a new request
  never extends an older link, and spending any link (or changing the password) kills the rest.
- `roomcast reset-link EMAIL` makes a link for an operator from plain random bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from server.accounts.mail import RESET_VALID_MINUTES, reset_link
from server.accounts.sockets import end_sockets
from server.accounts.tables import PasswordResetToken
from server.auth import limits
from server.auth.passwords import hash_password
from server.auth.schemas import Session
from server.auth.service import USER_FIELDS, check_password_rule, normalise_email, start_session
from server.auth.tables import RefreshToken, User
from server.auth.tokens import new_secret, secret_hash
from server.errors import bad_request, rate_limited
from server.ratelimit import RateLimiter
from server.services import Services
from server.settings import Settings

if TYPE_CHECKING:
    from saq.queue.base import Queue

log = logging.getLogger("roomcast.accounts")

RESET_TTL = timedelta(minutes=RESET_VALID_MINUTES)
PER_EMAIL_PER_HOUR = 5
PER_ADDRESS_PER_HOUR = 50
MAX_TOKEN = 200

MAIL_JOB = "send_password_reset"
MAIL_RETRIES = 40
"""With the delays below, a mail server may be down for about an hour before a reset mail is given up."""
MAIL_RETRY_DELAY_S = 1.0
MAIL_RETRY_MAX_DELAY_S = 120.0


def mailed_token(secret_key: str, nonce: str) -> str:
    """The token of the reset request whose job carries `nonce` (same answer on every attempt of that job)."""
    digest = hmac.new(secret_key.encode(), b"password-reset:" + nonce.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _email_key(services: Services, email: str) -> str:
    return services.key("rl", "reset", "email", hashlib.sha256(email.encode()).hexdigest()[:32])


async def request_reset(services: Services, queue: Queue, raw_email: str, address: str) -> None:
    """Count the attempt (429 past a limit) and enqueue the mail job; the same work for any well-formed email."""
    email = normalise_email(raw_email)
    limiter = RateLimiter(services.redis)
    wait = await limiter.hit(services.key("rl", "reset", "addr", address), PER_ADDRESS_PER_HOUR, 3600)
    if not wait:
        wait = await limiter.hit(_email_key(services, email), PER_EMAIL_PER_HOUR, 3600)
    if wait:
        log.info("accounts.reset_limited", extra={"client": address, "retry_after_s": wait})
        raise rate_limited(wait)
    if services.settings.smtp_url is None:
        log.info("accounts.reset_not_mailed", extra={"client": address, "reason": "ROOMCAST_SMTP_URL unset"})
        return
    nonce = secrets.token_urlsafe(32)
    await queue.enqueue(
        MAIL_JOB,
        key=f"reset:{nonce}",
        email=email,
        nonce=nonce,
        timeout=60,
        retries=MAIL_RETRIES,
        retry_delay=MAIL_RETRY_DELAY_S,
        retry_backoff=MAIL_RETRY_MAX_DELAY_S,
    )
    log.info("accounts.reset_requested", extra={"client": address})


async def store_token(user_id: uuid.UUID, token: str) -> bool:
    """Keep the token's hash, valid `RESET_TTL` from now; False if it was already spent (a late retry).

    Storing the same token again (the mail job's next attempt) restarts its 30 minutes: the link
    was not delivered before, so its reader still gets the full time the mail promises.
    """
    stored = await (
        PasswordResetToken.insert(
            PasswordResetToken(user=user_id, token_hash=secret_hash(token), expires_at=datetime.now(UTC) + RESET_TTL)
        )
        .on_conflict(
            target=PasswordResetToken.token_hash,
            action="DO UPDATE",
            values=[PasswordResetToken.expires_at],
            where=PasswordResetToken.used_at.is_null(),
        )
        .returning(PasswordResetToken.id)
    )
    return bool(stored)


async def operator_link(settings: Settings, raw_email: str) -> str | None:
    """A fresh one-time reset link for the account with this email, None if there is none (422: not an email)."""
    email = normalise_email(raw_email)
    token = new_secret()
    user_id = await (
        User.select(User.id).where((User.email == email) & User.guest_meeting_id.is_null()).output(as_list=True)
    )
    if not user_id:
        return None
    await store_token(user_id[0], token)
    log.info("accounts.reset_link_made", extra={"user_id": str(user_id[0])})
    return reset_link(settings, token)


async def operator_link_for(settings: Settings, raw_email: str) -> str | None:
    """`roomcast reset-link EMAIL`: `operator_link` with a database connection of its own."""
    from server.db import Database

    database = Database(settings.database_url or "")
    await database.start()
    try:
        return await operator_link(settings, raw_email)
    finally:
        await database.close()


async def confirm_reset(services: Services, token: str, new_password: str, user_agent: str | None) -> Session:
    """Spend the token, set the password, end every login, and start a new one (400 for a bad token)."""
    check_password_rule(new_password, "new_password")
    if not token or len(token) > MAX_TOKEN:
        raise bad_request("the reset link is invalid, expired or already used")
    password_hash = await hash_password(new_password)
    async with services.db.transaction():
        row = await (
            PasswordResetToken.select(PasswordResetToken.user)
            .where(
                (PasswordResetToken.token_hash == secret_hash(token))
                & PasswordResetToken.used_at.is_null()
                & (PasswordResetToken.expires_at > datetime.now(UTC))
            )
            .lock_rows()
            .first()
        )
        user = None
        if row is not None:
            user = await (
                User.select(*USER_FIELDS).where((User.id == row["user"]) & User.guest_meeting_id.is_null()).first()
            )
        if user is None:
            log.info("accounts.reset_refused")
            raise bad_request("the reset link is invalid, expired or already used")
        await spend_reset_links(user["id"])
        await User.update({User.password_hash: password_hash}).where(User.id == user["id"])
        revoked = await revoke_logins(user["id"])
        session = await start_session(services, user, user_agent=user_agent)
    await limits.clear_login_failures(services, user["email"])
    await end_sockets(services, user_id=user["id"], family_ids=revoked)
    log.info("accounts.password_reset", extra={"user_id": str(user["id"])})
    return session


async def spend_reset_links(user_id: uuid.UUID) -> None:
    """Every open reset link of the user stops working (one was used, or the password or email changed).

    Runs in the caller's `services.db.transaction()`, like `revoke_logins`.
    """
    await PasswordResetToken.update({PasswordResetToken.used_at: datetime.now(UTC)}).where(
        (PasswordResetToken.user == user_id) & PasswordResetToken.used_at.is_null()
    )


async def revoke_logins(user_id: uuid.UUID, except_family: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Revoke every live login of the user (but `except_family`); returns the families revoked."""
    query = RefreshToken.update({RefreshToken.revoked_at: datetime.now(UTC)}).where(
        (RefreshToken.user == user_id) & RefreshToken.revoked_at.is_null()
    )
    if except_family is not None:
        query = query.where(RefreshToken.family_id != except_family)
    rows = await query.returning(RefreshToken.family_id)
    return sorted({row["family_id"] for row in rows})
