"""Before a socket is ours: non-WebSocket requests, Origin check, address caps, subprotocol, the `auth` frame.

CSRF middleware and CORS do not apply to WebSockets; only an Origin check stops cross-site
WebSocket hijacking, so a handshake from a foreign `Origin` is refused with HTTP 403 before it
is accepted. Sockets are counted per client address (as the server sees it: behind a proxy,
the address uvicorn's `--forwarded-allow-ips` resolves): a cap on sockets that have not
authenticated yet stops one address from holding thousands of idle ones, and a higher cap on
all sockets bounds the rest (a venue's attendees often share one address). Refusals are HTTP
429 before the upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from litestar.types import Receive, Scope

from channels.codec import Codec, encode
from channels.protocol import (
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    Auth,
    Close,
    CloseCode,
    Error,
    ErrorCode,
    ServerFrame,
)
from channels.seams import Authenticator, Identity

log = logging.getLogger("roomcast.ws")

RawSend = Callable[[dict[str, Any]], Awaitable[None]]
"""ASGI `send` taking plain dicts: messages here are built once and shared by many sockets."""


async def authenticate(
    receive: Receive,
    send: RawSend,
    binary: bool,
    codec: Codec,
    authenticator: Authenticator,
    *,
    timeout_s: float,
    max_frames: int,
) -> Identity | None:
    """Wait for `auth` (errors for anything else); 4408 when time runs out, 4401 for a bad token."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
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
        if frames > max_frames:
            await _close(send, CloseCode.FLOODING, "too many frames before auth")
            return None
        frame, error = codec.decode(message, binary)
        if frame is None or not isinstance(frame, Auth):
            if error is None:
                error = Error(code=ErrorCode.UNAUTHORIZED, message="send auth first", ref=frame.ref if frame else None)
            await _send_frame(send, error, binary)
            continue
        try:
            identity = await authenticator(frame.token)
        except Exception:
            log.exception("ws.auth_failed")
            await _send_frame(send, Error(code=ErrorCode.UNAVAILABLE, message="try again", ref=frame.ref), binary)
            continue
        if identity is None:
            log.info("ws.auth_refused")
            await _close(send, CloseCode.UNAUTHENTICATED, "invalid or expired token")
            return None
        return identity


def header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


class OriginCheck:
    def __init__(self, allowed: Sequence[str]) -> None:
        self._origins = {o.lower().rstrip("/") for o in allowed}

    def allows(self, scope: Scope) -> bool:
        """Empty allows any; a request without `Origin` (not a browser) is allowed."""
        if not self._origins:
            return True
        origin = header(scope, b"origin")
        return not origin or origin.lower().rstrip("/") in self._origins


class AddressCounts:
    """Open sockets per client address, and those of them not authenticated yet."""

    def __init__(self, max_sockets: int, max_unauthenticated: int) -> None:
        self.max_sockets = max_sockets
        self.max_unauthenticated = max_unauthenticated
        self.open: Counter[str] = Counter()
        self.unauthenticated: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        """Count a new socket in, or refuse it (False) because its address is at a cap."""
        if self.open[address] >= self.max_sockets or self.unauthenticated[address] >= self.max_unauthenticated:
            return False
        self.open[address] += 1
        self.unauthenticated[address] += 1
        return True

    def authenticated(self, address: str) -> None:
        _decrement(self.unauthenticated, address)

    def closed(self, address: str, authenticated: bool) -> None:
        _decrement(self.open, address)
        if not authenticated:
            _decrement(self.unauthenticated, address)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def choose_subprotocol(scope: Scope) -> tuple[bool, str | None]:
    """The client's first subprotocol we speak: (binary?, the one to accept); none offered means JSON."""
    offered: Sequence[str] = scope.get("subprotocols") or ()  # type: ignore[assignment]
    for protocol in offered:
        if protocol == SUBPROTOCOL_MSGPACK:
            return True, protocol
        if protocol == SUBPROTOCOL_JSON:
            return False, protocol
    return False, None


async def refuse(scope: Scope, send: RawSend, status: int, body: bytes) -> None:
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


async def upgrade_required(send: RawSend) -> None:
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


async def _send_frame(send: RawSend, frame: ServerFrame, binary: bool) -> None:
    payload = encode(frame, binary)
    if binary:
        await send({"type": "websocket.send", "bytes": payload})
    else:
        await send({"type": "websocket.send", "text": payload.decode()})


async def _close(send: RawSend, code: Close, reason: str | None = None) -> None:
    reason = code.reason if reason is None else reason
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": int(code), "reason": reason})
