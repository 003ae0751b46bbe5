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
from server.db import NOW
from server.notifications.service import COLUMNS, notification_view, unread_count
from server.notifications.tables import Notification
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
        mine = Notification.user == user_id
        query = Notification.select(*COLUMNS).where(mine)
        if frame.before is not None:
            try:
                before_id = uuid.UUID(frame.before)
            except ValueError:
                raise FrameError(ErrorCode.BAD_REQUEST, "before is not a valid notification id") from None
            cursor = await Notification.select(Notification.created_at).where(mine & (Notification.id == before_id))
            if not cursor:  # not one of theirs: nothing is older than it
                return {"items": [], "unread": await unread_count(self.services, user_id)}
            at = cursor[0]["created_at"]
            query = query.where(
                (Notification.created_at < at) | ((Notification.created_at == at) & (Notification.id < before_id))
            )
        rows = await query.order_by(Notification.created_at, Notification.id, ascending=False).limit(frame.limit)
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
        marked = ids and await Notification.update({Notification.read_at: NOW}).where(
            (Notification.user == user_id) & Notification.id.is_in(ids) & Notification.read_at.is_null()
        ).returning(Notification.id)
        if marked:
            await cache.invalidate(self.services, cache.user_scope(user_id))  # the unread count in `welcome`
        return {"unread": await unread_count(self.services, user_id)}


def build_router(services: Services) -> FrameRouter:
    return NotificationHandlers(services).router()
