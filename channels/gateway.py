"""One connection's life: accept -> authenticate -> dispatch -> cleanup; the runtime of `/ws` in one process.

Every frame is untrusted input: it is decoded by one msgspec decoder over the application's
whole client-frame union (`channels.codec`); unknown types, wrong fields and input nested too
deeply get an `error` (`bad_request`) naming the problem and the connection stays open; a
client sending too fast gets `rate_limited` and then close 4429 (`channels.flood`). Dispatch is
one table for every frame type, core frames included; a `RoomFrame` is first authorised through
its room's policy (the grant, `channels.rooms.RoomHub.authorize`) and its handler gets the
grant. Logs carry session and user ids, never tokens.

What uvicorn (`--ws websockets-sansio`) does for us, configured in `roomcast serve`: frames
over 64 KiB are closed with 1009 before they reach the app, and text frames that are not UTF-8
with 1007; WebSocket pings every `heartbeat_s`, and a peer that has not answered one within
another `heartbeat_s` is dropped; on SIGTERM every socket gets close 1012.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send

from channels.asyncapi import asyncapi_document
from channels.backend import BrokerUnavailable
from channels.codec import Codec, frame_type
from channels.config import GatewayConfig
from channels.control import Control
from channels.handshake import (
    AddressCounts,
    OriginCheck,
    RawSend,
    authenticate,
    choose_subprotocol,
    client_address,
    header,
    refuse,
    upgrade_required,
)
from channels.hub import Hub
from channels.metrics import Metrics
from channels.presence import PresenceChanged
from channels.protocol import (
    CORE_CLIENT_FRAMES,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
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
    Welcome,
    WelcomeUser,
)
from channels.rooms import RoomHub
from channels.seams import Identity, merge_routers
from channels.session import Session
from channels.transport import WriteBatch, choose_writer

log = logging.getLogger("roomcast.ws")

Dispatch = Callable[[Session, Any], Awaitable[None]]


class Gateway:
    """The runtime of `/ws` in one process: sessions, decoding, dispatch, rooms."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.metrics: Metrics = config.metrics or Metrics()
        self.stream = config.stream
        self.hub = Hub(config.pubsub, metrics=self.metrics)
        self.rooms = RoomHub(self.hub, config.stream, config.policies, config.presence)
        self.sessions: dict[str, Session] = {}
        self.batch = WriteBatch()
        self.control = Control(self.sessions, config.credential_check, config.credential_check_s)
        self.hub.register(on_resync=self.rooms.resync, on_control=self.control.disconnect)
        core = set(CORE_CLIENT_FRAMES)
        missing_core = core - set(config.client_frames)
        if missing_core:
            raise ValueError(f"the client-frame union lacks core frames: {sorted(t.__name__ for t in missing_core)}")
        handlers = merge_routers(config.routers, [t for t in config.client_frames if t not in core])
        self.dispatch: dict[type[ClientFrame], Dispatch] = {
            Join: self._join,
            Leave: self._leave,
            Ping: self._ping,
            Auth: self._auth_again,
        }
        for frame_cls, handler in handlers.items():
            self.dispatch[frame_cls] = (
                _room_handler(self, handler) if issubclass(frame_cls, RoomFrame) else _handler(handler)
            )
        self.codec = Codec(config.client_frames)
        self._origins = OriginCheck(config.allowed_origins)
        self.addresses = AddressCounts(config.max_sockets_per_address, config.max_unauthenticated_per_address)
        self._asyncapi: bytes | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.config.pubsub.start()
        if self.config.presence is not None:
            await self.config.presence.start()
        self.control.start()

    async def stop(self) -> None:
        """Close what is still open with 1012 (uvicorn normally has already), then stop the background work."""
        await self.control.stop()
        for session in list(self.sessions.values()):
            session.close(CloseCode.RESTARTING)
        deadline = time.monotonic() + 2.0
        while self.sessions and time.monotonic() < deadline:  # noqa: ASYNC110  # sessions end in their own tasks
            await asyncio.sleep(0.02)
        if self.config.presence is not None:
            await self.config.presence.stop()
        await self.hub.stop()
        await self.config.pubsub.stop()

    # --- the ASGI endpoint -------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, asgi_send: Send) -> None:
        send = cast(RawSend, asgi_send)
        if scope["type"] != ScopeType.WEBSOCKET:
            await upgrade_required(send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        if not self._origins.allows(scope):
            log.info("ws.origin_refused", extra={"origin": header(scope, b"origin")[:200]})
            await refuse(scope, send, 403, b"origin not allowed")
            return
        address = client_address(scope)
        if not self.addresses.admit(address):
            log.warning("ws.address_cap", extra={"client": address, "open": self.addresses.open[address]})
            await refuse(scope, send, 429, b"too many connections from this address")
            return
        authenticated = False
        try:
            binary, subprotocol = choose_subprotocol(scope)
            await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
            identity = await authenticate(
                receive,
                send,
                binary,
                self.codec,
                self.config.authenticator,
                timeout_s=self.config.auth_timeout_s,
                max_frames=self.config.rate_limit.strikes,
            )
            if identity is None:
                return
            authenticated = True
            self.addresses.authenticated(address)
            await self._serve(identity, receive, asgi_send, binary, address)
        finally:
            self.addresses.closed(address, authenticated)

    async def _serve(self, identity: Identity, receive: Receive, asgi_send: Send, binary: bool, address: str) -> None:
        config = self.config
        session = Session(
            choose_writer(asgi_send, binary, self.metrics),
            session_id=secrets.token_hex(12),
            identity=identity,
            binary=binary,
            metrics=self.metrics,
            max_queue_bytes=config.max_queue_bytes,
            close_timeout_s=config.close_timeout_s,
            rate_limit=config.rate_limit,
            address=address,
            batch=self.batch,
        )
        session.reader = asyncio.current_task()
        self.sessions[session.session_id] = session
        self.control.expiries.add(session)
        self.metrics.connections.inc()
        log.info(
            "ws.authenticated",
            extra={
                "session_id": session.session_id,
                "user_id": identity.user_id,
                "guest": identity.guest,
                "format": "msgpack" if binary else "json",
                "direct": session.direct,
            },
        )
        disconnect_code: Any = None
        try:
            welcome = Welcome(
                session_id=session.session_id,
                user=WelcomeUser(id=identity.user_id, display_name=identity.display_name, guest=identity.guest),
                protocol=PROTOCOL_VERSION,
                heartbeat_s=config.heartbeat_s,
                unread_notifications=identity.unread_notifications,
            )
            try:
                await self.rooms.join_own_room(session, welcome)
            except BrokerUnavailable:
                session.close(CloseCode.TRY_AGAIN_LATER)
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    disconnect_code = message.get("code")
                    break
                if session.close_code is None:
                    await self._on_frame(session, message)
        except asyncio.CancelledError:
            if not session.forced:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            await self._cleanup(session, disconnect_code)

    async def _cleanup(self, session: Session, code: Any) -> None:
        self.sessions.pop(session.session_id, None)
        self.control.expiries.discard(session)
        if session.close_code is None:
            session.close_code = code if isinstance(code, int) else 1005
        await session.stop()
        try:
            await self.rooms.leave_all(session)
        except Exception:
            log.exception("ws.cleanup_failed", extra={"session_id": session.session_id})
        self.metrics.connections.dec()
        log.info(
            "ws.closed",
            extra={"session_id": session.session_id, "user_id": session.identity.user_id, "code": session.close_code},
        )

    # --- frames --------------------------------------------------------------------------------

    async def _on_frame(self, session: Session, message: Any) -> None:
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
            await self.dispatch[type(frame)](session, frame)
        except FrameError as err:
            retry = msgspec.UNSET if err.retry_after_s is None else err.retry_after_s
            session.send_frame(Error(code=err.code, message=err.message, ref=ref, retry_after_s=retry))
        except BrokerUnavailable:
            session.send_frame(Error(code=ErrorCode.UNAVAILABLE, message="realtime backend unavailable", ref=ref))
        except Exception:
            log.exception("ws.handler_failed", extra={"session_id": session.session_id, "type": kind})
            session.send_frame(Error(code=ErrorCode.INTERNAL, message="internal error", ref=ref))

    async def _join(self, session: Session, frame: Join) -> None:
        await self.rooms.join(session, frame)

    async def _leave(self, session: Session, frame: Leave) -> None:
        await self.rooms.leave(session, frame.room)
        session.send_frame(Reply(data={"room": frame.room}, ref=frame.ref))

    async def _ping(self, session: Session, frame: Ping) -> None:
        session.send_frame(Pong(ref=frame.ref))

    async def _auth_again(self, session: Session, frame: Auth) -> None:
        raise FrameError(ErrorCode.BAD_REQUEST, "already authenticated")

    def asyncapi(self) -> bytes:
        if self._asyncapi is None:
            frames = list(self.config.server_frames)
            if self.config.presence is not None and PresenceChanged not in frames:
                frames.append(PresenceChanged)
            self._asyncapi = msgspec.json.encode(
                asyncapi_document(
                    self.config.client_frames,
                    frames,
                    title=self.config.title,
                    version=self.config.version,
                    path=self.config.path,
                    public_url=self.config.public_url,
                    heartbeat_s=self.config.heartbeat_s,
                )
            )
        return self._asyncapi


def _handler(handler: Callable[..., Awaitable[Any]]) -> Dispatch:
    async def dispatch(session: Session, frame: Any) -> None:
        result = await handler(session, frame)
        session.send_frame(Reply(data={} if result is None else result, ref=frame.ref))

    return dispatch


def _room_handler(gateway: Gateway, handler: Callable[..., Awaitable[Any]]) -> Dispatch:
    """A `RoomFrame`'s handler, called with the grant of the room the frame names (the one authorisation point)."""
    authorize = gateway.rooms.authorize

    async def dispatch(session: Session, frame: Any) -> None:
        grant = await authorize(session, frame.room)
        result = await handler(session, frame, grant)
        session.send_frame(Reply(data={} if result is None else result, ref=frame.ref))

    return dispatch
