"""Scheduled notification work on SAQ: "meeting starting" reminders and retention.

Reminders are found by a scan every `reminder_scan_s` seconds rather than planned when a meeting
is saved, so a meeting whose time moves is simply found again at its new time. Each reminder is
its own job keyed by meeting and start time (one job however many workers scan), and each
notification carries a dedupe key (one notification per person even if a job runs twice).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from server import cache
from server.notifications.service import notify
from server.times import iso_z

if TYPE_CHECKING:
    from server.jobs import Context

log = logging.getLogger("roomcast.notifications.jobs")

REMINDER_RETRIES = 5


async def scan_meeting_reminders(ctx: Context) -> int:
    """Enqueue one reminder job for every meeting starting within the lead time."""
    services = ctx["services"]
    settings = services.settings
    now = datetime.now(UTC)
    async with services.db.pool.acquire() as connection:
        rows = await connection.fetch(
            """SELECT id, starts_at FROM meetings
               WHERE status IN ('scheduled', 'live') AND starts_at > $1 AND starts_at <= $2""",
            now,
            now + timedelta(seconds=settings.reminder_lead_s),
        )
    queue = ctx["worker"].queue
    for row in rows:
        starts_at = iso_z(row["starts_at"])
        await queue.enqueue(
            "send_meeting_reminder",
            key=f"reminder:{row['id']}:{starts_at}",
            meeting_id=str(row["id"]),
            starts_at=starts_at,
            timeout=60,
            retries=REMINDER_RETRIES,
            retry_delay=1.0,
            retry_backoff=30.0,
        )
    return len(rows)


async def send_meeting_reminder(ctx: Context, *, meeting_id: str, starts_at: str) -> int:
    """Tell owner, presenters and participants the meeting starts soon, once each, if it still does."""
    services = ctx["services"]
    async with services.db.pool.acquire() as connection:
        meeting = await connection.fetchrow(
            "SELECT id, title, starts_at, status, owner FROM meetings WHERE id = $1", uuid.UUID(meeting_id)
        )
        if (
            meeting is None
            or meeting["status"] not in ("scheduled", "live")
            or iso_z(meeting["starts_at"]) != starts_at
        ):
            log.info("job.reminder.skipped", extra={"meeting_id": meeting_id, "starts_at": starts_at})
            return 0
        people = await connection.fetch(
            """SELECT $2::uuid AS id UNION SELECT "user" FROM meeting_members WHERE meeting = $1
               UNION SELECT id FROM users WHERE guest_meeting_id = $1""",
            meeting["id"],
            meeting["owner"],
        )
    minutes = max(1, round((meeting["starts_at"] - datetime.now(UTC)).total_seconds() / 60))
    sent = 0
    data: dict[str, Any] = {"meeting_id": meeting_id, "starts_at": starts_at}
    for person in people:
        notification = await notify(
            services,
            person["id"],
            "meeting.starting",
            f"{meeting['title']} starts soon",
            f"It starts in about {minutes} minute{'s' if minutes != 1 else ''}.",
            data,
            dedupe_key=f"meeting.starting:{meeting_id}:{starts_at}",
        )
        sent += notification is not None
    log.info("job.reminder.sent", extra={"meeting_id": meeting_id, "starts_at": starts_at, "notified": sent})
    return sent


async def purge_old_notifications(ctx: Context) -> int:
    services = ctx["services"]
    cutoff = datetime.now(UTC) - timedelta(days=services.settings.notification_retention_days)
    async with services.db.pool.acquire() as connection:
        row = await connection.fetchrow(
            """WITH gone AS (DELETE FROM notifications WHERE created_at < $1 RETURNING "user", read_at)
               SELECT count(*) AS deleted,
                      coalesce(array_agg(DISTINCT "user") FILTER (WHERE read_at IS NULL), '{}') AS unread_of
               FROM gone""",
            cutoff,
        )
    deleted = int(row["deleted"])
    await cache.invalidate(services, *(cache.user_scope(user) for user in row["unread_of"]))  # their unread counts
    log.info("job.purge_notifications", extra={"deleted": deleted})
    return deleted
