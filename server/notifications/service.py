"""`notify()`: the one function every trigger uses to store a notification and send it live.

Stored first, then published as a `notification` event to `user:<id>`, so every open tab of
that user on any server process sees it at once and a closed tab finds it in the list later.
A `dedupe_key` makes a notification that must be sent once (a reminder) idempotent.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec

from channels.protocol import Event
from server import cache
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


COLUMNS = "id, kind, title, body, data, created_at, read_at"


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
    async with services.db.pool.acquire() as connection:
        row = await connection.fetchrow(
            f"""INSERT INTO notifications (id, "user", kind, title, body, data, dedupe_key)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
                ON CONFLICT ("user", dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
                RETURNING {COLUMNS}""",
            uuid.uuid4(), user_id, kind, title, body, msgspec.json.encode(data or {}).decode(), dedupe_key,
        )  # fmt: skip
    if row is None:
        return None
    await cache.invalidate(services, cache.user_scope(user_id))  # the unread count in `welcome`
    notification = notification_view(row)
    await services.broker.publish(NotificationEvent(room=user_room(user_id), notification=notification))
    log.info("notification.sent", extra={"user_id": str(user_id), "kind": kind, "notification_id": notification.id})
    return notification


async def unread_count(services: Services, user_id: uuid.UUID) -> int:
    async with services.db.pool.acquire() as connection:
        count: int = await connection.fetchval(
            'SELECT count(*) FROM notifications WHERE "user" = $1 AND read_at IS NULL', user_id
        )
    return count
