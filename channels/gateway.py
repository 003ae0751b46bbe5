"""One connection's life: accept -> authenticate -> serve -> cleanup; the runtime of `/ws` in one process.

The handshake (Origin, per-address caps, subprotocol, the `auth` frame) is `channels.handshake`;
each frame of an authenticated connection goes to `channels.dispatch` (decode, flood control,
the dispatch table, the grant of a `RoomFrame`); the connection's sending is its
`channels.session.Session`. Logs carry session and user ids, never tokens.

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
from typing import Any, cast

import msgspec
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send

from channels.asyncapi import asyncapi_document
from channels.backend import BrokerUnavailable
from channels.config import GatewayConfig
from channels.control import Control
from channels.dispatch import Dispatcher
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
from channels.protocol import PROTOCOL_VERSION, CloseCode, Welcome, WelcomeUser
from channels.rooms import RoomHub
from channels.seams import Identity
from channels.session import Session
from channels.transport import WriteBatch, choose_writer

log = logging.getLogger("roomcast.ws")


class Gateway:
    """The runtime of `/ws` in one process: its sessions, their frames (`Dispatcher`), rooms, control."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.metrics: Metrics = config.metrics or Metrics()
        self.stream = config.stream
        self.batch = WriteBatch(config.write_delay_s)
        self.hub = Hub(config.pubsub, metrics=self.metrics, batch=self.batch)
        self.rooms = RoomHub(self.hub, config.stream, config.policies, config.presence)
        self.sessions: dict[str, Session] = {}
        self.control = Control(self.sessions, config.credential_check, config.credential_check_s)
        self.hub.register(on_resync=self.rooms.resync, on_control=self.control.disconnect)
        self.frames = Dispatcher(config, self.rooms, self.metrics)
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
                self.frames.codec,
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
        if session.socket is not None:
            session.socket.release_handshake()
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
                    await self.frames.on_frame(session, message)
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
