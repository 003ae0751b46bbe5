"""Frames in: decode, flood control, one dispatch table for every frame type, failures as `error` frames.

Every frame is untrusted input: it is decoded by one msgspec decoder over the application's
whole client-frame union (`channels.codec`); unknown types, wrong fields and input nested too
deeply get an `error` (`bad_request`) naming the problem and the connection stays open; a
client sending too fast gets `rate_limited` and then close 4429 (`channels.flood`). Dispatch is
one table for every frame type, core frames included; a `RoomFrame` is first authorised through
its room's policy (the grant, `channels.rooms.RoomHub.authorize`) and its handler gets the
grant. A handler's answer is the `reply`; a `FrameError` it raises is the `error`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from channels.backend import BrokerUnavailable
from channels.codec import Codec, frame_type
from channels.config import GatewayConfig
from channels.metrics import Metrics
from channels.protocol import (
    CORE_CLIENT_FRAMES,
    MAX_FRAME_BYTES,
    Auth,
    ClientFrame,
    CloseCode,
    Error,
    ErrorCode,
    FrameError,
    Join,
    Leave,
    Ping,
    Pong,
    Reply,
    RoomFrame,
)
from channels.rooms import RoomHub
from channels.seams import merge_routers
from channels.session import Session

log = logging.getLogger("roomcast.ws")

Dispatch = Callable[[Session, Any], Awaitable[None]]


class Dispatcher:
    """The frames of every connection of one process: the codec and the table from frame type to handler."""

    def __init__(self, config: GatewayConfig, rooms: RoomHub, metrics: Metrics) -> None:
        self.rooms = rooms
        self.metrics = metrics
        core = set(CORE_CLIENT_FRAMES)
        missing_core = core - set(config.client_frames)
        if missing_core:
            raise ValueError(f"the client-frame union lacks core frames: {sorted(t.__name__ for t in missing_core)}")
        handlers = merge_routers(config.routers, [t for t in config.client_frames if t not in core])
        self.table: dict[type[ClientFrame], Dispatch] = {
            Join: self._join,
            Leave: self._leave,
            Ping: self._ping,
            Auth: self._auth_again,
        }
        for frame_cls, handler in handlers.items():
            self.table[frame_cls] = (
                _room_handler(rooms, handler) if issubclass(frame_cls, RoomFrame) else _handler(handler)
            )
        self.codec = Codec(config.client_frames)

    async def on_frame(self, session: Session, message: Any) -> None:
        """One `websocket.receive` of an authenticated connection: answered, refused or rate-limited."""
        raw = message.get("text") if message.get("text") is not None else message.get("bytes")
        if raw is not None and len(raw) > MAX_FRAME_BYTES:  # the server enforces this; belt and braces
            session.close(CloseCode.TOO_BIG)
            return
        frame, error = self.codec.decode(message, session.binary)
        wait = session.allow(time.monotonic(), join=isinstance(frame, Join))
        if wait is not None:
            self.metrics.frame_in("rate_limited")
            if wait > 0:
                ref = frame.ref if frame is not None else (error.ref if error is not None else None)
                session.send_frame(
                    Error(
                        code=ErrorCode.RATE_LIMITED,
                        message=f"too many frames; wait {wait} s",
                        ref=ref,
                        retry_after_s=wait,
                    )
                )
            return
        if frame is None:
            self.metrics.frame_in("invalid")
            if error is not None:
                session.send_frame(error)
            return
        kind = frame_type(type(frame))
        self.metrics.frame_in(kind)
        ref = frame.ref
        try:
            await self.table[type(frame)](session, frame)
        except FrameError as err:
            retry = msgspec.UNSET if err.retry_after_s is None else err.retry_after_s
            session.send_frame(Error(code=err.code, message=err.message, ref=ref, retry_after_s=retry))
        except BrokerUnavailable:
            session.send_frame(Error(code=ErrorCode.UNAVAILABLE, message="realtime backend unavailable", ref=ref))
        except Exception:
            log.exception("ws.handler_failed", extra={"session_id": session.session_id, "type": kind})
            session.send_frame(Error(code=ErrorCode.INTERNAL, message="internal error", ref=ref))

    # --- the core frames -----------------------------------------------------------------------

    async def _join(self, session: Session, frame: Join) -> None:
        await self.rooms.join(session, frame)

    async def _leave(self, session: Session, frame: Leave) -> None:
        await self.rooms.leave(session, frame.room)
        session.send_frame(Reply(data={"room": frame.room}, ref=frame.ref))

    async def _ping(self, session: Session, frame: Ping) -> None:
        session.send_frame(Pong(ref=frame.ref))

    async def _auth_again(self, session: Session, frame: Auth) -> None:
        raise FrameError(ErrorCode.BAD_REQUEST, "already authenticated")


def _handler(handler: Callable[..., Awaitable[Any]]) -> Dispatch:
    async def dispatch(session: Session, frame: Any) -> None:
        result = await handler(session, frame)
        session.send_frame(Reply(data={} if result is None else result, ref=frame.ref))

    return dispatch


def _room_handler(rooms: RoomHub, handler: Callable[..., Awaitable[Any]]) -> Dispatch:
    """A `RoomFrame`'s handler, called with the grant of the room the frame names (the one authorisation point)."""
    authorize = rooms.authorize

    async def dispatch(session: Session, frame: Any) -> None:
        grant = await authorize(session, frame.room)
        result = await handler(session, frame, grant)
        session.send_frame(Reply(data={} if result is None else result, ref=frame.ref))

    return dispatch
