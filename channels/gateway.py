"""`/ws`: the one WebSocket endpoint, as a Litestar plugin (infrastructure, like ChannelsPlugin).

One connection = one `Session`: a reader (this handler's task) that decodes every client frame
with one msgspec decoder over the application's whole client-frame union and dispatches it, and
a writer task that drains the session's bounded send queue. Fan-out never awaits: behind
uvicorn's sans-I/O connection it writes each event's ready-made frame bytes straight to every
idle socket (`channels.wire`) and queues only behind a socket whose buffers are full, so a
stalled socket delays nobody else; a queue that overflows closes its socket with 4008.

What uvicorn (`--ws websockets-sansio`) does for us, configured in `roomcast serve`: frames
over 64 KiB are closed with 1009 before they reach the app; WebSocket pings every
`heartbeat_s`, and a peer that has not answered one within another `heartbeat_s` is dropped;
on SIGTERM every socket gets close 1012. ASGI has no way for an app to send pings itself.

Every frame is untrusted input: unknown types and wrong fields get an `error` (`bad_request`)
naming the problem, the connection stays open, and a client sending too fast gets
`rate_limited` and then close 4429. Logs carry session and user ids, never tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union, cast

import msgspec
from litestar import Litestar, Response, asgi, get
from litestar.config.app import AppConfig
from litestar.enums import ScopeType
from litestar.plugins import InitPluginProtocol
from litestar.types import ASGIApp, Receive, Scope, Send

from channels.asyncapi import asyncapi_document
from channels.broker import Broker, BrokerUnavailable, Disconnect, Envelope, Subscription, room_matches
from channels.metrics import Metrics
from channels.presence import PresenceChanged, PresenceTracker
from channels.protocol import (
    CLOSE_CODES,
    CORE_CLIENT_FRAMES,
    CORE_SERVER_FRAMES,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    Auth,
    ClientFrame,
    Close,
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
    ServerFrame,
    Welcome,
    WelcomeUser,
)
from channels.rooms import RoomHub
from channels.seams import Authenticator, CredentialCheck, FrameRouter, Handler, Identity, RoomPolicy, merge_routers
from channels.wire import DirectSocket, ws_frame

log = logging.getLogger("roomcast.ws")

RawSend = Callable[[dict[str, Any]], Awaitable[None]]
"""ASGI `send` taking plain dicts: messages here are built once and shared by many sockets."""

_JSON = msgspec.json.Encoder()
_MSGPACK = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """Frames per connection: a token bucket, then `strikes` refused frames before close 4429."""

    per_second: float = 20.0
    burst: int = 60
    strikes: int = 20


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """Everything the gateway is composed from; the application builds one in its composition root."""

    broker: Broker
    authenticator: Authenticator
    credential_check: CredentialCheck | None = None
    """Asked every `credential_check_s` which open sockets' credentials were revoked meanwhile."""
    credential_check_s: float = 30.0
    """The longest a socket outlives its revoked credential if this process missed the disconnect."""
    policies: Sequence[RoomPolicy] = ()
    """Checked in order; the first whose `owns(room)` is true decides. Must own `user:<id>`."""
    routers: Sequence[FrameRouter] = ()
    client_frames: Sequence[type[ClientFrame]] = CORE_CLIENT_FRAMES
    """The whole client-frame union (core frames included); each non-core type needs one handler."""
    server_frames: Sequence[type[ServerFrame]] = CORE_SERVER_FRAMES
    """Every frame the server may send, events included: documented in the AsyncAPI document."""
    presence: PresenceTracker | None = None
    metrics: Metrics | None = None
    allowed_origins: Sequence[str] = ()
    """Browser handshakes from another `Origin` get HTTP 403; empty allows any (and no Origin is allowed)."""
    heartbeat_s: int = 25
    """Announced in `welcome`; the server (uvicorn) must be configured to ping at this interval."""
    auth_timeout_s: float = 10.0
    max_queue: int = 2000
    """Frames waiting for one socket; one more closes it with 4008."""
    close_timeout_s: float = 10.0
    """How long a close may wait behind a stalled socket before the connection is dropped."""
    rate_limit: RateLimit = field(default_factory=RateLimit)
    path: str = "/ws"
    asyncapi_path: str | None = "/asyncapi.json"
    title: str = "roomcast"
    version: str = "1"
    public_url: str = "http://127.0.0.1:8000"


def frame_type(cls: type[msgspec.Struct]) -> str:
    return str(cls.__struct_config__.tag)


class _Probe(msgspec.Struct):
    """A lenient look at a frame that failed to decode, to name the problem and echo `ref`."""

    type: Any = None
    ref: Any = None


class Own:
    """A frame for one connection only (a reply, an error, a `joined`), encoded for its wire format."""

    __slots__ = ("binary", "kind", "payload")

    def __init__(self, payload: bytes, kind: str, binary: bool) -> None:
        self.payload = payload
        self.kind = kind
        self.binary = binary

    # `binary` is ignored (the frame was encoded for its connection): the signature is Envelope's
    def message(self, binary: bool) -> dict[str, Any]:
        if self.binary:
            return {"type": "websocket.send", "bytes": self.payload}
        return {"type": "websocket.send", "text": self.payload.decode()}

    def wire(self, binary: bool) -> bytes:
        return ws_frame(self.payload, self.binary)


class Closing:
    """The last item of a connection's queue: sent through ASGI so the server runs the close handshake."""

    __slots__ = ("code", "reason")
    kind = "close"

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


Outgoing = Envelope | Own | Closing
"""What waits in a connection's send queue: a shared room event, a frame of its own, the close."""


class Session:
    """One authenticated connection: what handlers see (`SessionView`) and what the broker feeds.

    Frames go straight to the socket when nothing is queued before them and the socket takes
    writes (`DirectSocket`, one `write` per frame, no task switch); otherwise they wait in the
    queue for the writer task, which drains it when the socket is writable again, several
    frames per system call. Without a `DirectSocket` (not uvicorn's sans-I/O connection) every
    frame goes through the writer task and ASGI `send`.
    """

    __slots__ = (
        "_deadline",
        "_direct",
        "_expiry",
        "_identity",
        "_last",
        "_limited_until",
        "_metrics",
        "_queue",
        "_send",
        "_session_id",
        "_strikes",
        "_tokens",
        "_wake",
        "binary",
        "close_code",
        "forced",
        "gateway",
        "reader",
        "subscriptions",
    )

    def __init__(
        self,
        gateway: Gateway,
        send: RawSend,
        *,
        session_id: str,
        identity: Identity,
        binary: bool,
        direct: DirectSocket | None = None,
    ) -> None:
        self.gateway = gateway
        self._metrics = gateway.metrics
        self._send = send
        self._direct = direct
        self._session_id = session_id
        self._identity = identity
        self.binary = binary
        self.subscriptions: dict[str, Subscription] = {}
        self._queue: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self.close_code: int | None = None
        self.reader: asyncio.Task[Any] | None = None
        self.forced = False
        self._deadline: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        if identity.expires_at is not None:
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, identity.expires_at - time.time()), self.close, CloseCode.UNAUTHENTICATED, "credential expired"
            )
        self._tokens = float(gateway.config.rate_limit.burst)
        self._last = time.monotonic()
        self._limited_until = 0.0
        self._strikes = 0

    # SessionView
    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def rooms(self) -> frozenset[str]:
        return frozenset(self.subscriptions)

    @property
    def direct(self) -> bool:
        """Frames are written straight to the socket (`DirectSocket`), not through ASGI `send`."""
        return self._direct is not None

    # sending
    def encode(self, frame: ServerFrame) -> Own:
        """Encode once for this connection's wire format (raises on an unencodable payload)."""
        payload = _MSGPACK.encode(frame) if self.binary else _JSON.encode(frame)
        return Own(payload, frame_type(type(frame)), self.binary)

    def push(self, item: Own | Envelope) -> None:
        """Write now if nothing waits before it and the socket takes it, else queue (never blocks)."""
        if self.close_code is not None:
            return
        direct = self._direct
        if direct is not None and not self._queue and direct.writable():
            direct.write(item.wire(self.binary))
            self._metrics.frame_out(item.kind)
            return
        if len(self._queue) >= self.gateway.config.max_queue:
            self.overflow()
            return
        self._queue.append(item)
        self._wake.set()

    def send_frame(self, frame: ServerFrame) -> None:
        """Send a server frame to this connection only (handlers may use it for extra frames)."""
        self.push(self.encode(frame))

    deliver = push
    """The broker's `Subscriber.deliver`: a room event, in order after everything before it."""

    def overflow(self) -> None:
        if self.close_code is not None:
            return
        self.gateway.metrics.queue_overflows.inc()
        log.warning(
            "ws.queue_overflow",
            extra={"session_id": self._session_id, "user_id": self._identity.user_id, "queued": len(self._queue)},
        )
        self.close(CloseCode.TOO_SLOW)

    def close(self, code: int, reason: str | None = None) -> None:
        """Close after what is queued (4008 drops the queue first); gives up on a stalled peer in time.

        `code` is a `CloseCode` value, whose reason is sent unless `reason` says more.
        """
        if self.close_code is not None:
            return
        if reason is None:
            reason = code.reason if isinstance(code, Close) else ""
        self.close_code = code
        if code == CloseCode.TOO_SLOW:
            self._queue.clear()
        self._queue.append(Closing(code, reason))
        self._wake.set()
        log.info("ws.closing", extra={"session_id": self._session_id, "user_id": self._identity.user_id, "code": code})
        self._deadline = asyncio.get_running_loop().call_later(self.gateway.config.close_timeout_s, self._give_up)

    def _give_up(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.forced = True
            self.reader.cancel()

    async def write_forever(self) -> None:
        """Drain the queue in order until the close is sent (or the peer is gone)."""
        queue, wake, direct = self._queue, self._wake, self._direct
        try:
            while True:
                if not queue:
                    wake.clear()
                    await wake.wait()
                    continue
                item = queue[0]
                if isinstance(item, Closing):
                    queue.clear()
                    await self._send({"type": "websocket.close", "code": int(item.code), "reason": item.reason})
                    return
                if direct is None:
                    queue.popleft()
                    await self._send(item.message(self.binary))
                    self._metrics.frame_out(item.kind)
                elif direct.writable():
                    self._write_queued(direct)
                elif direct.closed():
                    return  # the reader sees the disconnect
                else:
                    await direct.drained()  # the item stays first in the queue: later frames queue behind it
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the peer went away mid-send: the reader sees the disconnect
            log.debug("ws.write_stopped", extra={"session_id": self._session_id, "error": type(err).__name__})

    def _write_queued(self, direct: DirectSocket) -> None:
        """Everything queued up to the close (if any), in one system call."""
        queue, binary, metrics = self._queue, self.binary, self._metrics
        frames: list[bytes] = []
        while queue:
            item = queue[0]
            if isinstance(item, Closing):
                break
            queue.popleft()
            frames.append(item.wire(binary))
            metrics.frame_out(item.kind)
        direct.write_many(frames)

    # flooding
    def allow(self, now: float) -> int | None:
        """None if this frame may be handled; else seconds the client should wait (or -1: closed)."""
        limit = self.gateway.config.rate_limit
        self._tokens = min(float(limit.burst), self._tokens + (now - self._last) * limit.per_second)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        if now >= self._limited_until:
            self._strikes = 0
            self._limited_until = now + max(1.0, math.ceil((1.0 - self._tokens) / limit.per_second))
        self._strikes += 1
        if self._strikes > limit.strikes:
            log.warning("ws.flooding", extra={"session_id": self._session_id, "user_id": self._identity.user_id})
            self.close(CloseCode.FLOODING)
            return -1
        return max(1, math.ceil(self._limited_until - now))


class Gateway:
    """The runtime of `/ws` in one process: sessions, decoding, dispatch, rooms."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.metrics = config.metrics or config.broker.metrics
        self.broker = config.broker
        self.hub = RoomHub(config.broker, config.policies, config.presence)
        core = set(CORE_CLIENT_FRAMES)
        missing_core = core - set(config.client_frames)
        if missing_core:
            raise ValueError(f"the client-frame union lacks core frames: {sorted(t.__name__ for t in missing_core)}")
        self.handlers: dict[type[ClientFrame], Handler] = merge_routers(
            config.routers, [t for t in config.client_frames if t not in core]
        )
        union: Any = Union[tuple(config.client_frames)]  # noqa: UP007  # a runtime-built union
        self._json = msgspec.json.Decoder(union)
        self._msgpack = msgspec.msgpack.Decoder(union)
        self._json_probe = msgspec.json.Decoder(_Probe)
        self._msgpack_probe = msgspec.msgpack.Decoder(_Probe)
        self._tags = {frame_type(t) for t in config.client_frames}
        self._origins = {o.lower().rstrip("/") for o in config.allowed_origins}
        self.sessions: dict[str, Session] = {}
        config.broker.on_control = self._on_control
        self._asyncapi: bytes | None = None
        self._checker: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start()
        if self.config.presence is not None:
            await self.config.presence.start()
        if self.config.credential_check is not None:
            self._checker = asyncio.create_task(self._check_credentials(), name="roomcast.ws.credentials")

    async def stop(self) -> None:
        """Close what is still open with 1012 (uvicorn normally has already), then stop the background work."""
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        for session in list(self.sessions.values()):
            session.close(CloseCode.RESTARTING)
        deadline = time.monotonic() + 2.0
        while self.sessions and time.monotonic() < deadline:  # noqa: ASYNC110  # sessions end in their own tasks
            await asyncio.sleep(0.02)
        if self.config.presence is not None:
            await self.config.presence.stop()
        await self.broker.stop()

    # --- the ASGI endpoint -------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, asgi_send: Send) -> None:
        send = cast(RawSend, asgi_send)
        if scope["type"] != ScopeType.WEBSOCKET:
            await _upgrade_required(send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        if not self._origin_allowed(scope):
            log.info("ws.origin_refused", extra={"origin": _header(scope, b"origin")[:200]})
            await _refuse(scope, send, 403, b"origin not allowed")
            return
        offered = [str(p) for p in cast(Sequence[str], scope.get("subprotocols") or ())]
        binary, subprotocol = _choose(offered)
        await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})
        identity = await self._authenticate(receive, send, binary)
        if identity is None:
            return
        session = Session(
            self,
            send,
            session_id=secrets.token_hex(12),
            identity=identity,
            binary=binary,
            direct=DirectSocket.of(asgi_send),
        )
        session.reader = asyncio.current_task()
        self.sessions[session.session_id] = session
        self.metrics.connections.inc()
        writer = asyncio.create_task(session.write_forever(), name=f"roomcast.ws.writer:{session.session_id}")
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
                heartbeat_s=self.config.heartbeat_s,
                unread_notifications=identity.unread_notifications,
            )
            try:
                await self.hub.join_own_room(session, welcome)
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
            await self._cleanup(session, writer, disconnect_code)

    async def _cleanup(self, session: Session, writer: asyncio.Task[None], code: Any) -> None:
        self.sessions.pop(session.session_id, None)
        if session._deadline is not None:
            session._deadline.cancel()
        if session._expiry is not None:
            session._expiry.cancel()
        if session.close_code is None:
            session.close_code = code if isinstance(code, int) else 1005
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        try:
            await self.hub.leave_all(session)
        except Exception:
            log.exception("ws.cleanup_failed", extra={"session_id": session.session_id})
        self.metrics.connections.dec()
        log.info(
            "ws.closed",
            extra={"session_id": session.session_id, "user_id": session.identity.user_id, "code": session.close_code},
        )

    def _origin_allowed(self, scope: Scope) -> bool:
        if not self._origins:
            return True
        origin = _header(scope, b"origin")
        return not origin or origin.lower().rstrip("/") in self._origins

    async def _authenticate(self, receive: Receive, send: RawSend, binary: bool) -> Identity | None:
        """Wait for `auth` (errors for anything else); 4408 when time runs out, 4401 for a bad token."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.auth_timeout_s
        frames = 0
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                await _close(send, CloseCode.AUTH_TIMEOUT)
                return None
            if message["type"] == "websocket.disconnect":
                return None
            frames += 1
            if frames > self.config.rate_limit.strikes:
                await _close(send, CloseCode.FLOODING, "too many frames before auth")
                return None
            frame, error = self.decode(message, binary)
            if frame is None or not isinstance(frame, Auth):
                if error is None:
                    error = Error(
                        code=ErrorCode.UNAUTHORIZED, message="send auth first", ref=frame.ref if frame else None
                    )
                await _send_frame(send, error, binary)
                continue
            try:
                identity = await self.config.authenticator(frame.token)
            except Exception:
                log.exception("ws.auth_failed")
                await _send_frame(send, Error(code=ErrorCode.UNAVAILABLE, message="try again", ref=frame.ref), binary)
                continue
            if identity is None:
                log.info("ws.auth_refused")
                await _close(send, CloseCode.UNAUTHENTICATED, "invalid or expired token")
                return None
            return identity

    def decode(self, message: Any, binary: bool) -> tuple[ClientFrame | None, Error | None]:
        """One frame from the wire, or the `error` that answers it (naming the problem, echoing `ref`)."""
        data: str | bytes | None = message.get("text")
        msgpack = False
        if data is None:
            data = message.get("bytes")
            msgpack = binary
        if data is None:
            return None, Error(code=ErrorCode.BAD_REQUEST, message="empty frame")
        try:
            if isinstance(data, str):
                frame: ClientFrame = self._json.decode(data)
            else:
                frame = self._msgpack.decode(data) if msgpack else self._json.decode(data)
        except msgspec.DecodeError as err:
            return None, self._explain(data, msgpack, err)
        return frame, None

    def _explain(self, data: str | bytes, msgpack: bool, err: Exception) -> Error:
        wire = "MessagePack" if msgpack else "JSON"
        try:
            if isinstance(data, bytes) and msgpack:
                probe: _Probe = self._msgpack_probe.decode(data)
            else:
                probe = self._json_probe.decode(data)
        except msgspec.DecodeError:
            return Error(code=ErrorCode.BAD_REQUEST, message=f"a frame must be one {wire} object: {err}")
        ref = probe.ref if isinstance(probe.ref, str) else None
        if not isinstance(probe.type, str):
            message = "a frame needs a string `type`"
        elif probe.type not in self._tags:
            message = f"unknown frame type {probe.type[:50]!r}"
        else:
            message = f"invalid {probe.type!r} frame: {err}"
        return Error(code=ErrorCode.BAD_REQUEST, message=message, ref=ref)

    async def _on_frame(self, session: Session, message: Any) -> None:
        raw = message.get("text") if message.get("text") is not None else message.get("bytes")
        if raw is not None and len(raw) > MAX_FRAME_BYTES:  # the server enforces this; belt and braces
            session.close(CloseCode.TOO_BIG)
            return
        wait = session.allow(time.monotonic())
        frame, error = self.decode(message, session.binary)
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
            if isinstance(frame, Join):
                await self.hub.join(session, frame)
            elif isinstance(frame, Leave):
                await self.hub.leave(session, frame.room)
                session.send_frame(Reply(data={"room": frame.room}, ref=ref))
            elif isinstance(frame, Ping):
                session.send_frame(Pong(ref=ref))
            elif isinstance(frame, Auth):
                raise FrameError(ErrorCode.BAD_REQUEST, "already authenticated")
            elif isinstance(frame, RoomFrame):
                grant = await self.hub.authorize(session, frame.room)
                result = await self.handlers[type(frame)](session, frame, grant)
                session.send_frame(Reply(data={} if result is None else result, ref=ref))
            else:
                result = await self.handlers[type(frame)](session, frame)
                session.send_frame(Reply(data={} if result is None else result, ref=ref))
        except FrameError as err:
            retry = msgspec.UNSET if err.retry_after_s is None else err.retry_after_s
            session.send_frame(Error(code=err.code, message=err.message, ref=ref, retry_after_s=retry))
        except BrokerUnavailable:
            session.send_frame(Error(code=ErrorCode.UNAVAILABLE, message="realtime backend unavailable", ref=ref))
        except Exception:
            log.exception("ws.handler_failed", extra={"session_id": session.session_id, "type": kind})
            session.send_frame(Error(code=ErrorCode.INTERNAL, message="internal error", ref=ref))

    def _on_control(self, message: Disconnect) -> None:
        prefix, credentials = message.room_prefix, message.credentials
        spared = message.except_credentials
        for session in list(self.sessions.values()):
            identity = session.identity
            if message.user_id not in ("*", identity.user_id):
                continue
            if prefix is not None and not any(room_matches(room, prefix) for room in session.subscriptions):
                continue
            if credentials is not None and identity.credential not in credentials:
                continue
            if spared and identity.credential in spared:
                continue
            session.close(_close_value(message.code), message.reason or None)

    async def _check_credentials(self) -> None:
        """Close (4401) the sockets whose credential was revoked, in case this process missed the disconnect."""
        check = self.config.credential_check
        assert check is not None
        while True:
            await asyncio.sleep(self.config.credential_check_s)
            sessions = [s for s in self.sessions.values() if s.identity.credential and s.close_code is None]
            if not sessions:
                continue
            try:
                revoked = set(await check([s.identity for s in sessions]))
            except Exception:
                log.warning("ws.credential_check_failed", exc_info=True, extra={"sessions": len(sessions)})
                continue
            for session in sessions:
                if session.identity.credential in revoked:
                    session.close(CloseCode.UNAUTHENTICATED, "credential revoked")
            if revoked:
                log.info("ws.credentials_revoked", extra={"credentials": len(revoked)})

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


class GatewayPlugin(InitPluginProtocol):
    """Adds `/ws`, `/asyncapi.json` and the gateway's lifespan (broker listener, presence refresh) to an app."""

    def __init__(self, config: GatewayConfig) -> None:
        self.gateway = Gateway(config)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        gateway = self.gateway

        async def ws(scope: Scope, receive: Receive, send: Send) -> None:
            await gateway.handle(scope, receive, send)

        handlers: list[Any] = [asgi(gateway.config.path, copy_scope=False, include_in_schema=False)(ws)]
        if gateway.config.asyncapi_path:

            @get(gateway.config.asyncapi_path, sync_to_thread=False, tags=["ops"], include_in_schema=False)
            def asyncapi_json() -> Response[bytes]:
                """The WebSocket protocol as an AsyncAPI 3.0 document, generated from the frame types."""
                return Response(gateway.asyncapi(), media_type="application/json")

            handlers.append(asyncapi_json)
        app_config.route_handlers.extend(handlers)
        app_config.lifespan.append(self._lifespan)
        return app_config

    def front(self, app: ASGIApp) -> ASGIApp:
        """`app` with WebSocket connections to `/ws` taken straight to the gateway, ahead of it.

        Litestar wraps the `send` of every route in its exception middleware, one more coroutine
        per frame per member; ahead of it the gateway gets the server's own `send`, and with it
        `DirectSocket`. The route the plugin adds stays for servers that run `app` itself.
        """
        path, handle = self.gateway.config.path, self.gateway.handle

        async def front(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.WEBSOCKET and scope["path"] == path:
                await handle(scope, receive, send)
            else:
                await app(scope, receive, send)

        return front

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncGenerator[None, None]:
        await self.gateway.start()
        try:
            yield
        finally:
            await self.gateway.stop()


def _close_value(code: int) -> int:
    """The `CloseCode` value of a code that came over the wire (a control message), else the bare code."""
    return next((value for value in CLOSE_CODES if value == code), code)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _choose(offered: list[str]) -> tuple[bool, str | None]:
    """The client's first subprotocol we speak: (binary?, the one to accept); none offered means JSON."""
    for protocol in offered:
        if protocol == SUBPROTOCOL_MSGPACK:
            return True, protocol
        if protocol == SUBPROTOCOL_JSON:
            return False, protocol
    return False, None


async def _send_frame(send: RawSend, frame: ServerFrame, binary: bool) -> None:
    if binary:
        await send({"type": "websocket.send", "bytes": _MSGPACK.encode(frame)})
    else:
        await send({"type": "websocket.send", "text": _JSON.encode(frame).decode()})


async def _close(send: RawSend, code: Close, reason: str | None = None) -> None:
    reason = code.reason if reason is None else reason
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": int(code), "reason": reason})


async def _refuse(scope: Scope, send: RawSend, status: int, body: bytes) -> None:
    """An HTTP answer instead of the upgrade (the ASGI `websocket.http.response` extension), else a bare 403."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def _upgrade_required(send: RawSend) -> None:
    body = msgspec.json.encode({"error": {"code": "bad_request", "message": "/ws speaks WebSocket only"}})
    await send(
        {
            "type": "http.response.start",
            "status": 426,
            "headers": [
                (b"content-type", b"application/json"),
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
