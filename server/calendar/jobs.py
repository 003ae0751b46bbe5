"""Calendar sync on SAQ: the sync job, channel renewal, and the scan that schedules both.

`calendar_sync` retries on provider errors (SAQ's `retries`, with backoff); rate limits are
waited out inside it (`Retry-After`). A revoked grant is not an error to retry: the connection is
marked and the job ends. The scan runs every `SCAN_S` seconds and renews each channel once half
its lifetime (as the provider returned it) has passed, and syncs connections that have not synced
for `RESYNC_AFTER` (a webhook can be lost; Graph's `missed` says so, Google's never does), also
one left `syncing` by a worker that died mid-sync (the sync lock expires with the job timeout).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from piccolo.querystring import QueryString

from server.calendar.service import Calendar
from server.calendar.sync import renew_channel, run_sync
from server.calendar.tables import CalendarConnection

if TYPE_CHECKING:
    from server.jobs import Context

log = logging.getLogger("roomcast.calendar.jobs")

SCAN_S = 10
RESYNC_AFTER = timedelta(minutes=15)


def _calendar(ctx: Context) -> Calendar:
    return Calendar(ctx["services"], ctx["worker"].queue)


async def calendar_sync(ctx: Context, *, connection_id: str) -> int:
    """Sync one connection (coalesced: see `Calendar.request_sync`)."""
    job = ctx.get("job")
    final = job is None or job.attempts >= job.retries
    return await run_sync(_calendar(ctx), uuid.UUID(connection_id), final_attempt=final)


async def calendar_renew(ctx: Context, *, connection_id: str) -> bool:
    """Renew one connection's push channel or subscription."""
    return await renew_channel(_calendar(ctx), uuid.UUID(connection_id))


async def calendar_scan(ctx: Context) -> int:
    """Schedule renewals of channels past half their life, and syncs of connections quiet for too long."""
    calendar = _calendar(ctx)
    if not calendar.providers:
        return 0
    live = (CalendarConnection.revoked == False) & CalendarConnection.provider.is_in(list(calendar.providers))  # noqa: E712
    renew = await CalendarConnection.select(CalendarConnection.id).where(
        live,
        CalendarConnection.channel_expires_at.is_not_null(),
        # hand SQL fragment: half the channel's life is date arithmetic between two columns
        QueryString("now() >= channel_created_at + (channel_expires_at - channel_created_at) / 2"),
    )
    quiet_since = datetime.now(UTC) - RESYNC_AFTER
    stale = await CalendarConnection.select(CalendarConnection.id).where(
        live,
        (CalendarConnection.last_synced_at < quiet_since)
        | (CalendarConnection.last_synced_at.is_null() & (CalendarConnection.created_at < quiet_since)),
        CalendarConnection.updated_at < quiet_since,
    )
    for row in renew:
        await calendar.request_renewal(row["id"])
    for row in stale:
        await calendar.request_sync(row["id"])
    if renew or stale:
        log.info("calendar.scan", extra={"renewals": len(renew), "resyncs": len(stale)})
    return len(renew) + len(stale)
