"""The reset mail job: runs in the SAQ worker, never inside a request.

SAQ retries a job that raises, with exponential backoff (`server.accounts.resets` enqueues it
with `MAIL_RETRIES` and the delays), so a mail server that is down delays the mail instead of
losing it. Every attempt derives the same token from the job's nonce, so one request is one link.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server.accounts import mail
from server.accounts.resets import mailed_token, store_token
from server.auth.tables import User

if TYPE_CHECKING:
    from server.jobs import Context

log = logging.getLogger("roomcast.accounts.jobs")


async def send_password_reset(ctx: Context, *, email: str, nonce: str) -> bool:
    """Mail a reset link to the account with `email`, if there is one; raises to be retried if sending fails."""
    services = ctx["services"]
    settings = services.settings
    job = ctx.get("job")
    job_id = job.id if job is not None else None
    if settings.smtp_url is None:
        log.warning("job.reset_mail.skipped", extra={"job_id": job_id, "reason": "ROOMCAST_SMTP_URL unset"})
        return False
    token = mailed_token(settings.secret_key, nonce)
    user = await (
        User.select(User.id, User.email, User.display_name)
        .where((User.email == email) & User.guest_meeting_id.is_null())
        .first()
    )
    if user is None:
        log.info("job.reset_mail.no_account", extra={"job_id": job_id})
        return False
    if not await store_token(user["id"], token):
        log.info("job.reset_mail.already_used", extra={"job_id": job_id, "user_id": str(user["id"])})
        return False
    message = mail.reset_message(
        settings, to=user["email"], display_name=user["display_name"], link=mail.reset_link(settings, token)
    )
    try:
        await mail.send(settings, message)
    except Exception as err:
        attempts = job.attempts if job is not None else None
        log.warning(
            "job.reset_mail.failed",
            extra={"job_id": job_id, "user_id": str(user["id"]), "attempt": attempts, "error": type(err).__name__},
        )
        raise
    log.info("job.reset_mail.sent", extra={"job_id": job_id, "user_id": str(user["id"])})
    return True
