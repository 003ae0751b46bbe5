"""`notify()`: the one function every trigger uses to store a notification and send it live.

Stored first, then published as a `notification` event to `user:<id>`, so every open tab of
that user on any server process sees it at once and a closed tab finds it in the list later.
A `dedupe_key` makes a notification that must be sent once (a reminder) idempotent.
Rows are read and written through the Piccolo table `server.notifications.tables.Notification`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec
from piccolo.columns import Column

from channels.protocol import Event
from server import cache
from server.notifications.tables import Notification
from server.rooms import user_room
from server.services import Services
from server.times import iso_z

log = logging.getLogger("roomcast.notifications")


class NotificationOut(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: str
    read: bool


class NotificationEvent(Event, tag="notification", kw_only=True):
    notification: NotificationOut


COLUMNS: tuple[Column, ...] = (
    Notification.id,
    Notification.kind,
    Notification.title,
    Notification.body,
    Notification.data,
    Notification.created_at,
    Notification.read_at,
)
"""What `notification_view` reads."""


def notification_view(row: Any) -> NotificationOut:
    data = row["data"]
    if isinstance(data, str):
        data = msgspec.json.decode(data)
    return NotificationOut(
        id=str(row["id"]),
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        data=data,
        created_at=iso_z(row["created_at"]) or "",
        read=row["read_at"] is not None,
    )


async def notify(
    services: Services,
    user_id: uuid.UUID,
    kind: str,
    title: str,
    body: str = "",
    data: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
) -> NotificationOut | None:
    """Store and deliver one notification; None if `dedupe_key` says it was already sent."""
    notification_row = Notification(
        id=uuid.uuid4(),
        user=user_id,
        kind=kind,
        title=title,
        body=body,
        data=msgspec.json.encode(data or {}).decode(),
        dedupe_key=dedupe_key,
    )
    # the only unique index a new row can hit is ("user", dedupe_key): a conflict means already sent
    inserted = await Notification.insert(notification_row).on_conflict(action="DO NOTHING").returning(*COLUMNS)
    if not inserted:
        return None
    row = inserted[0]
    await cache.invalidate(services, cache.user_scope(user_id))  # the unread count in `welcome`
    notification = notification_view(row)
    await services.broker.publish(NotificationEvent(room=user_room(user_id), notification=notification))
    log.info("notification.sent", extra={"user_id": str(user_id), "kind": kind, "notification_id": notification.id})
    return notification


async def unread_count(services: Services, user_id: uuid.UUID) -> int:
    """The user's unread notifications (`welcome` carries it; `server.realtime` caches it per user)."""
    count: int = await Notification.count().where((Notification.user == user_id) & Notification.read_at.is_null())
    return count
