"""Scheduled notification work on SAQ: "meeting starting" reminders and retention.

Reminders are found by a scan every `reminder_scan_s` seconds rather than planned when a meeting
is saved, so a meeting whose time moves is simply found again at its new time. Each reminder is
its own job keyed by meeting and start time (one job however many workers scan), and each
notification carries a dedupe key (one notification per person even if a job runs twice).

The reminders read the meetings tables by hand: they belong to `server.meetings`, a layer above
this one (the import contracts in pyproject.toml), so their Piccolo tables are out of reach here.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from server import cache
from server.auth.tables import User
from server.notifications.service import notify
from server.notifications.tables import Notification
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
    # hand SQL: the meetings table is a layer above (see the module docstring)
    rows = await Notification.raw(
        """SELECT id, starts_at FROM meetings
           WHERE status IN ('scheduled', 'live') AND starts_at > {} AND starts_at <= {}""",
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
    # hand SQL, as the next statement: the meetings tables are a layer above (see the module docstring)
    meetings = await Notification.raw(
        "SELECT id, title, starts_at, status, owner FROM meetings WHERE id = {}", uuid.UUID(meeting_id)
    )
    meeting = meetings[0] if meetings else None
    if meeting is None or meeting["status"] not in ("scheduled", "live") or iso_z(meeting["starts_at"]) != starts_at:
        log.info("job.reminder.skipped", extra={"meeting_id": meeting_id, "starts_at": starts_at})
        return 0
    people = await Notification.raw(
        'SELECT {}::uuid AS id UNION SELECT "user" FROM meeting_members WHERE meeting = {}',
        meeting["owner"],
        meeting["id"],
    )
    guests = await User.select(User.id).where(User.guest_meeting_id == meeting["id"])
    minutes = max(1, round((meeting["starts_at"] - datetime.now(UTC)).total_seconds() / 60))
    sent = 0
    data: dict[str, Any] = {"meeting_id": meeting_id, "starts_at": starts_at}
    for person in {row["id"] for row in people} | {row["id"] for row in guests}:
        notification = await notify(
            services,
            person,
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
    # hand SQL: counted and grouped inside PostgreSQL; Piccolo's `returning` would bring every deleted row to Python
    [row] = await Notification.raw(
        """WITH gone AS (DELETE FROM notifications WHERE created_at < {} RETURNING "user", read_at)
           SELECT count(*) AS deleted,
                  coalesce(array_agg(DISTINCT "user") FILTER (WHERE read_at IS NULL), '{{}}') AS unread_of
           FROM gone""",
        cutoff,
    )
    deleted = int(row["deleted"])
    await cache.invalidate(services, *(cache.user_scope(user) for user in row["unread_of"]))  # their unread counts
    log.info("job.purge_notifications", extra={"deleted": deleted})
    return deleted
