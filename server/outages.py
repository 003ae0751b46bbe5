"""Frames during a PostgreSQL or Redis outage: `unavailable`, never `internal`.

The realtime core answers `internal` for any exception it does not know, and it knows nothing of
asyncpg. `server.app` wraps every feature handler and room policy with these guards, so a frame
that needed the database while it was away gets `error` `unavailable` ("try again"), its socket
stays open, and the same frame works once the database is back. What counts as an outage is
`server.errors.is_outage`, the same test REST uses for its 503.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from channels.protocol import ErrorCode, FrameError
from channels.seams import FrameRouter, Grant, RoomPolicy, SessionView
from server.errors import is_outage

log = logging.getLogger("roomcast.realtime")

T = TypeVar("T")


def unavailable() -> FrameError:
    return FrameError(ErrorCode.UNAVAILABLE, "a service the server needs is not answering; try again shortly")


def _guard(call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(call)
    async def guarded(*args: Any) -> T:
        try:
            return await call(*args)
        except Exception as err:
            if not is_outage(err):
                raise
            log.warning(
                "ws.unavailable", extra={"handler": getattr(call, "__name__", "?"), "error": type(err).__name__}
            )
            raise unavailable() from err

    return guarded


def guard_router(router: FrameRouter) -> FrameRouter:
    """The same handlers, each answering `unavailable` when the database or Redis is away."""
    guarded = FrameRouter()
    guarded.handlers = {frame_type: _guard(handler) for frame_type, handler in router.handlers.items()}
    return guarded


class GuardedPolicy:
    """A room policy whose `authorize` and `snapshot` answer `unavailable` instead of failing a join."""

    def __init__(self, inner: RoomPolicy) -> None:
        self.inner = inner

    def owns(self, room: str) -> bool:
        return self.inner.owns(room)

    def tracks_presence(self, room: str) -> bool:
        return self.inner.tracks_presence(room)

    async def authorize(self, session: SessionView, room: str) -> Grant:
        return await _guard(self.inner.authorize)(session, room)

    async def snapshot(self, session: SessionView, room: str) -> Any:
        return await _guard(self.inner.snapshot)(session, room)
