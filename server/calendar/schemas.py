"""REST bodies and the room event of calendar sync (docs/calendar.md). Provider tokens appear in none."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from channels.protocol import Event

ConnectionStatus = Literal["active", "syncing", "error"]
ChangeKind = Literal["created", "updated", "moved", "cancelled"]


class Connection(msgspec.Struct, kw_only=True):
    """One connected calendar account (docs/calendar.md)."""

    id: uuid.UUID
    provider: str
    """`google` or `outlook`."""
    account_email: str
    status: ConnectionStatus
    error: str | None
    """Why the connection is in `error` (e.g. the account revoked access: connect again)."""
    last_synced_at: datetime | None
    created_at: datetime


class AuthorizationUrl(msgspec.Struct, kw_only=True):
    authorization_url: str
    """Send the browser here; the provider redirects back to the callback with a signed, single-use state."""


class CalendarEventOut(msgspec.Struct, kw_only=True):
    """An event as the last sync saw it, for choosing one to create a meeting from."""

    calendar_event_id: str
    title: str
    starts_at: datetime | None
    ends_at: datetime | None
    meeting_ids: list[uuid.UUID]
    """Meetings already created from this event."""


class CalendarEventPage(msgspec.Struct, kw_only=True):
    items: list[CalendarEventOut]


class CalendarChange(msgspec.Struct, kw_only=True):
    """What one sync found changed about one event."""

    calendar_event_id: str
    change: ChangeKind
    """`created` (new to us), `updated` (title only), `moved` (its times), `cancelled` (or deleted)."""
    title: str
    starts_at: datetime | None
    ends_at: datetime | None
    meeting_ids: list[uuid.UUID]
    """Meetings that follow this event (each also got `meeting.updated` when it moved or was cancelled)."""


class CalendarUpdated(Event, tag="calendar.updated", kw_only=True):
    """Sent to `user:<id>` when a sync of one of the user's connections found changes."""

    connection_id: str
    changes: list[CalendarChange]
