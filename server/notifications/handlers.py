"""The `notifications` (list, newest first) and `read` frames. Payloads are untrusted.

Only the caller's own notifications are ever listed or marked; unknown or foreign ids in `read`
are ignored without saying whether they exist.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from channels.protocol import ClientFrame, ErrorCode, FrameError
from channels.seams import FrameRouter, SessionView
from server import cache
from server.auth.identity import principal_of
from server.notifications.service import COLUMNS, notification_view, unread_count
from server.services import Services

MAX_READ_IDS = 500


class ListNotifications(ClientFrame, tag="notifications", kw_only=True):
    limit: int = 20
    """1..100."""
    before: str | None = None
    """A notification id: list those older than it."""


class MarkRead(ClientFrame, tag="read", kw_only=True):
    ids: list[str] = msgspec.field(default_factory=list)


NOTIFICATION_CLIENT_FRAMES = (ListNotifications, MarkRead)


def _user(session: SessionView) -> uuid.UUID:
    return principal_of(session).user_id


class NotificationHandlers:
    """The notification frame handlers: one named method per frame type, registered by `router()`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def router(self) -> FrameRouter:
        router = FrameRouter()
        router.on(ListNotifications)(self.list_notifications)
        router.on(MarkRead)(self.mark_read)
        return router

    async def list_notifications(self, session: SessionView, frame: ListNotifications) -> dict[str, Any]:
        if not 1 <= frame.limit <= 100:
            raise FrameError(ErrorCode.BAD_REQUEST, "limit must be 1..100")
        user_id = _user(session)
        args: list[Any] = [user_id, frame.limit]
        cursor = ""
        if frame.before is not None:
            try:
                args.append(uuid.UUID(frame.before))
            except ValueError:
                raise FrameError(ErrorCode.BAD_REQUEST, "before is not a valid notification id") from None
            cursor = (
                """AND (created_at, id) < (SELECT created_at, id FROM notifications WHERE id = $3 AND "user" = $1)"""
            )
        async with self.services.db.pool.acquire() as connection:
            rows = await connection.fetch(
                f'SELECT {COLUMNS} FROM notifications WHERE "user" = $1 {cursor} '
                "ORDER BY created_at DESC, id DESC LIMIT $2",
                *args,
            )
        return {"items": [notification_view(row) for row in rows], "unread": await unread_count(self.services, user_id)}

    async def mark_read(self, session: SessionView, frame: MarkRead) -> dict[str, Any]:
        if len(frame.ids) > MAX_READ_IDS:
            raise FrameError(ErrorCode.BAD_REQUEST, f"at most {MAX_READ_IDS} ids at once")
        ids = []
        for value in frame.ids:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                continue  # like an unknown id: ignored
        user_id = _user(session)
        async with self.services.db.pool.acquire() as connection:
            marked: str = await connection.execute(
                "UPDATE notifications SET read_at = now() "
                'WHERE "user" = $1 AND id = ANY($2::uuid[]) AND read_at IS NULL',
                user_id,
                ids,
            )
        if marked != "UPDATE 0":
            await cache.invalidate(self.services, cache.user_scope(user_id))  # the unread count in `welcome`
        return {"unread": await unread_count(self.services, user_id)}


def build_router(services: Services) -> FrameRouter:
    return NotificationHandlers(services).router()
