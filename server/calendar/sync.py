"""One connection's sync, its push channel, and the meetings that follow its events.

A sync lists what changed since the stored cursor (Google `syncToken`, Graph delta link), every
page to the end. An expired cursor means a full listing, which has no deletion records: the
events we hold are diffed against it, and one missing from it is treated as deleted. Changes are
judged against what we hold, so a full resync that finds nothing new sends nothing, and an event
listed twice counts once.

Concurrency: one sync per connection at a time (a Redis lock held for the whole sync; SAQ's
sweeper may start a job again while it still runs). Webhooks coalesce through the `pending` flag
(`Calendar.request_sync`), which the job clears only once it holds the lock.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.columns import Column

from server.calendar.crypto import webhook_secret
from server.calendar.providers.base import (
    WINDOW_FUTURE,
    WINDOW_PAST,
    CalEvent,
    Channel,
    Listing,
    ProviderError,
    Revoked,
    SyncReset,
)
from server.calendar.schemas import CalendarChange, CalendarUpdated, ChangeKind
from server.calendar.service import SYNC_TIMEOUT_S, Calendar, Row, hold_events
from server.calendar.tables import CalendarConnection, CalendarEvent
from server.db import NOW
from server.errors import ApiError
from server.meetings.schemas import MeetingPatch
from server.meetings.service import update_meeting
from server.notifications.service import notify
from server.services import Services
from server.times import iso_z

log = logging.getLogger("roomcast.calendar.sync")

MAX_CHANGES_PER_EVENT = 500
"""A `calendar.updated` lists at most this many changes (a first sync of a busy calendar); the rest are counted."""
FOLLOWING = ("scheduled", "live")
"""Meetings in these statuses follow their event; ended and cancelled ones keep what they were."""


@dataclass(frozen=True, slots=True)
class Change:
    event: CalEvent
    kind: ChangeKind


def channel_id_for(connection_id: uuid.UUID) -> str:
    """Google channel ids: the connection id and a random suffix (letters, digits and `-` only)."""
    return f"{connection_id}-{secrets.token_hex(8)}"


def connection_of_channel(channel_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(channel_id[:36])
    except ValueError:
        return None


def channel_secret(services: Services, provider: str, connection_id: uuid.UUID, channel_id: str) -> str:
    """Google's channel token is bound to the channel; Graph's clientState to the connection."""
    if provider == "google":
        return webhook_secret(services.settings, "google", channel_id)
    return webhook_secret(services.settings, "outlook", str(connection_id))


async def run_sync(calendar: Calendar, connection_id: uuid.UUID, *, final_attempt: bool) -> int:
    """Sync one connection under its lock; returns how many events changed."""
    services = calendar.services
    lock = services.redis.lock(
        services.key("calendar", "sync", str(connection_id)),
        timeout=SYNC_TIMEOUT_S,
        blocking_timeout=SYNC_TIMEOUT_S - 30,
    )
    if not await lock.acquire():
        raise ProviderError("another sync of this connection held the lock too long")
    try:
        await services.redis.delete(services.key("calendar", "pending", str(connection_id)))
        row = await calendar.load(connection_id)
        if row is None or row["revoked"] or row["provider"] not in calendar.providers:
            return 0
        await _set_status(services, connection_id, "syncing")
        try:
            changes = await _sync_once(calendar, row)
        except Revoked as err:
            await calendar.mark_revoked(row, str(err))
            return 0
        except ProviderError as err:
            await _set_status(services, connection_id, "error" if final_attempt else "active", f"sync failed: {err}")
            log.warning(
                "calendar.sync_failed",
                extra={"connection_id": str(connection_id), "error": str(err)[:300], "final": final_attempt},
            )
            raise
        await ensure_channel(calendar, connection_id)
        return changes
    finally:
        try:
            await lock.release()
        except Exception:
            log.warning("calendar.sync_lock_lost", extra={"connection_id": str(connection_id)})


async def _set_status(services: Services, connection_id: uuid.UUID, status: str, error: str | None = None) -> None:
    """Set the connection's status (and `error`, when given) unless it was revoked."""
    values: dict[Column | str, Any] = {CalendarConnection.status: status, CalendarConnection.updated_at: NOW}
    if error is not None:
        values[CalendarConnection.error] = error[:500]
    await CalendarConnection.update(values).where(_not_revoked(connection_id))


def _not_revoked(connection_id: uuid.UUID) -> Any:
    return (CalendarConnection.id == connection_id) & (CalendarConnection.revoked == False)  # noqa: E712


async def _sync_once(calendar: Calendar, row: Row) -> int:
    provider = calendar.provider(row["provider"])
    cursor: str | None = row["sync_cursor"]
    try:
        listing: Listing = await calendar.with_token(row, lambda token: provider.list_events(token, cursor))
    except SyncReset as err:
        log.info("calendar.full_resync", extra={"connection_id": str(row["id"]), "reason": str(err)})
        listing = await calendar.with_token(row, lambda token: provider.list_events(token, None))
    changes = await _apply(calendar.services, row["id"], listing)
    log.info(
        "calendar.synced",
        extra={
            "connection_id": str(row["id"]),
            "provider": row["provider"],
            "full": listing.full,
            "listed": len(listing.events),
            "changed": len(changes),
        },
    )
    if changes:
        await _tell(calendar.services, row, changes)
    return len(changes)


async def _apply(services: Services, connection_id: uuid.UUID, listing: Listing) -> list[Change]:
    """Diff the listing against the events we hold, store the new state and the cursor, in one transaction."""
    latest = {event.id: event for event in listing.events}  # an event listed twice: its last version counts
    async with services.db.engine.transaction():
        rows = (
            await CalendarEvent.select(
                CalendarEvent.event_id,
                CalendarEvent.title,
                CalendarEvent.starts_at,
                CalendarEvent.ends_at,
                CalendarEvent.cancelled,
            )
            .where(CalendarEvent.connection == connection_id)
            .lock_rows("UPDATE")
        )
        held = {row["event_id"]: row for row in rows}
        changes: list[Change] = []
        for event in latest.values():
            old = held.get(event.id)
            if event.cancelled:
                if old is not None and not old["cancelled"]:
                    changes.append(
                        Change(CalEvent(event.id, old["title"], old["starts_at"], old["ends_at"], True), "cancelled")
                    )
                continue
            if old is None or old["cancelled"]:
                kind: ChangeKind = "created"
            elif (old["starts_at"], old["ends_at"]) != (event.starts_at, event.ends_at):
                kind = "moved"
            elif old["title"] != event.title:
                kind = "updated"
            else:
                continue
            changes.append(Change(event, kind))
        if listing.full:
            today = datetime.now(UTC)
            listed_from, listed_to = today - WINDOW_PAST + timedelta(days=1), today + WINDOW_FUTURE - timedelta(days=1)
            for event_id, old in held.items():
                if event_id in latest or old["cancelled"]:
                    continue
                end = old["ends_at"] or old["starts_at"]
                if end is not None and not (listed_from <= end and (old["starts_at"] or end) <= listed_to):
                    continue  # outside the listed window: absence proves nothing
                gone = CalEvent(event_id, old["title"], old["starts_at"], old["ends_at"], True)
                changes.append(Change(gone, "cancelled"))
        await hold_events(connection_id, [change.event for change in changes])  # one event id per change
        await CalendarConnection.update(
            {
                CalendarConnection.sync_cursor: listing.cursor,
                CalendarConnection.last_synced_at: NOW,
                CalendarConnection.status: "active",
                CalendarConnection.error: None,
                CalendarConnection.updated_at: NOW,
            }
        ).where(_not_revoked(connection_id))
    return changes


async def _tell(services: Services, row: Row, changes: list[Change]) -> None:
    """Move or cancel the meetings that follow changed events, then tell the connection's owner."""
    connection_id = row["id"]
    # hand SQL: meetings follow an event through fields of their JSONB `source`, matched with `->>` so the
    # expression index serves it; Piccolo's JSONB offers only `->`
    meetings = await CalendarEvent.raw(
        """SELECT id, owner, title, status, source->>'calendar_event_id' AS event_id FROM meetings
           WHERE source IS NOT NULL AND source->>'connection_id' = {} AND source->>'calendar_event_id' = ANY({})""",
        str(connection_id),
        [c.event.id for c in changes],
    )
    by_event: dict[str, list[Row]] = {}
    for meeting in meetings:
        by_event.setdefault(meeting["event_id"], []).append(meeting)
    out: list[CalendarChange] = []
    for change in changes:
        followers = by_event.get(change.event.id, [])
        for meeting in followers:
            if change.kind in ("moved", "cancelled") and meeting["status"] in FOLLOWING:
                await _follow(services, connection_id, meeting, change)
        out.append(
            CalendarChange(
                calendar_event_id=change.event.id,
                change=change.kind,
                title=change.event.title,
                starts_at=change.event.starts_at,
                ends_at=change.event.ends_at,
                meeting_ids=[m["id"] for m in followers],
            )
        )
    event = CalendarUpdated(
        room=f"user:{row['user']}", connection_id=str(connection_id), changes=out[:MAX_CHANGES_PER_EVENT]
    )
    try:
        await services.broker.publish(event)
    except Exception:
        log.exception("calendar.publish_failed", extra={"connection_id": str(connection_id)})


async def _follow(services: Services, connection_id: uuid.UUID, meeting: Row, change: Change) -> None:
    """Apply one event change to one meeting (sends `meeting.updated`), then a `meeting.changed` notification."""
    if change.kind == "cancelled":
        patch = MeetingPatch(status="cancelled")
    else:
        patch = MeetingPatch(starts_at=change.event.starts_at, ends_at=change.event.ends_at)
    try:
        updated = await update_meeting(services, meeting["id"], patch)
    except ApiError as err:
        log.warning(
            "calendar.follow_failed",
            extra={"meeting_id": str(meeting["id"]), "event_id": change.event.id, "error": err.message},
        )
        return
    log.info(
        "calendar.meeting_followed",
        extra={"meeting_id": str(meeting["id"]), "event_id": change.event.id, "change": change.kind},
    )
    when = iso_z(updated.starts_at)
    title = f"{updated.title} was cancelled" if change.kind == "cancelled" else f"{updated.title} moved"
    body = "Its calendar event was cancelled." if change.kind == "cancelled" else f"It now starts at {when}."
    data = {
        "meeting_id": str(updated.id),
        "connection_id": str(connection_id),
        "calendar_event_id": change.event.id,
        "change": change.kind,
        "status": updated.status,
        "starts_at": when,
        "ends_at": iso_z(updated.ends_at),
    }
    try:
        await notify(services, meeting["owner"], "meeting.changed", title, body, data)
    except Exception:
        log.exception("calendar.notify_failed", extra={"meeting_id": str(meeting["id"])})


# --- push channels -------------------------------------------------------------------------


async def ensure_channel(calendar: Calendar, connection_id: uuid.UUID) -> None:
    """Open a push channel for a connection that has none (best effort: a failure is logged, sync still works)."""
    row = await calendar.load(connection_id)
    if row is None or row["revoked"] or row["channel_id"]:
        return
    await _open_channel(calendar, row, None)


async def renew_channel(calendar: Calendar, connection_id: uuid.UUID) -> bool:
    """Renew the connection's channel (Google: a new one; Graph: extended). True if it was renewed."""
    row = await calendar.load(connection_id)
    if row is None or row["revoked"] or row["provider"] not in calendar.providers:
        return False
    current = None
    if row["channel_id"]:
        current = Channel(row["channel_id"], row["channel_resource_id"], row["channel_expires_at"])
    return await _open_channel(calendar, row, current)


async def _open_channel(calendar: Calendar, row: Row, current: Channel | None) -> bool:
    services = calendar.services
    provider = calendar.provider(row["provider"])
    connection_id: uuid.UUID = row["id"]
    new_id = channel_id_for(connection_id)
    secret = channel_secret(services, row["provider"], connection_id, new_id)
    address = calendar.webhook_address(row["provider"])
    try:
        if current is None:
            channel = await calendar.with_token(row, lambda token: provider.watch(token, new_id, secret, address))
        else:
            channel = await calendar.with_token(
                row, lambda token: provider.renew(token, current, new_id, secret, address)
            )
    except Revoked as err:
        await calendar.mark_revoked(row, str(err))
        return False
    except ProviderError as err:
        log.warning(
            "calendar.channel_failed",
            extra={"connection_id": str(connection_id), "renewal": current is not None, "error": str(err)[:300]},
        )
        if current is not None:
            raise
        return False
    await CalendarConnection.update(
        {
            CalendarConnection.channel_id: channel.id,
            CalendarConnection.channel_resource_id: channel.resource_id,
            CalendarConnection.channel_expires_at: channel.expires_at,
            CalendarConnection.channel_created_at: NOW,
            CalendarConnection.updated_at: NOW,
        }
    ).where(CalendarConnection.id == connection_id)
    log.info(
        "calendar.channel_opened" if current is None else "calendar.channel_renewed",
        extra={"connection_id": str(connection_id), "channel_id": channel.id, "expires_at": iso_z(channel.expires_at)},
    )
    if current is not None:
        await calendar.request_sync(connection_id)  # anything announced only on the old channel meanwhile
    return True
