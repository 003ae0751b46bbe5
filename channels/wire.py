"""Server frames as WebSocket bytes built once, written straight to uvicorn's connection.

The fan-out writes one event to every local member of a room. Through ASGI each member's
`send` re-encodes the same text, re-serialises the same frame and walks a coroutine chain;
the profile put two thirds of the per-frame cost there. A frame from server to client is not
masked (RFC 6455 §5.1), so with compression off its bytes are the same for every connection:
`ws_frame` builds them once per event and wire format, and `DirectSocket` hands them to the
connection's transport, as `websockets.broadcast()` does.

`DirectSocket.of(send)` recognises uvicorn's `websockets-sansio` connection (what `roomcast
serve` runs) behind the ASGI `send` it was given; for anything else (another server, another
`--ws`, a middleware wrapping `send`) it returns None and the gateway keeps to plain ASGI.
The handshake and the close still go through ASGI `send`, so uvicorn's own state (close
handshake, timers, `websocket.disconnect`) stays its own; only data frames of an open
connection are written here, whole, between uvicorn's own whole-frame writes.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import Any

_TEXT = 0x81
"""FIN + opcode 1 (text)."""
_BINARY = 0x82
"""FIN + opcode 2 (binary)."""


def ws_frame(payload: bytes, binary: bool) -> bytes:
    """One unmasked, unfragmented, uncompressed server frame carrying `payload`."""
    first = _BINARY if binary else _TEXT
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def direct_path_available() -> bool:
    """This uvicorn has the `websockets-sansio` connection the direct path writes to (0.35.0 and later)."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:
        return False
    return WebSocketsSansIOProtocol.__name__ == "WebSocketsSansIOProtocol"


class DirectSocket:
    """Write ready-made frames to one uvicorn `websockets-sansio` connection without ASGI."""

    __slots__ = ("_connection", "_transport", "_writable")

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._transport: asyncio.WriteTransport = connection.transport
        self._writable: asyncio.Event = connection.writable

    @classmethod
    def of(cls, send: Any) -> DirectSocket | None:
        """The connection behind uvicorn's own `send` after `websocket.accept`, else None."""
        connection: Any = getattr(send, "__self__", None)
        if type(connection).__name__ != "WebSocketsSansIOProtocol":
            return None
        try:
            protocol, transport, writable = connection.conn, connection.transport, connection.writable
            extensions = protocol.extensions
        except AttributeError:  # a uvicorn whose connection no longer looks like this
            return None
        if extensions or not isinstance(writable, asyncio.Event) or not hasattr(transport, "write"):
            return None  # permessage-deflate: frames differ per connection
        if not connection.handshake_complete or connection.close_sent:
            return None
        return cls(connection)

    def writable(self) -> bool:
        """Open, not closing, and the transport is below its high-water mark."""
        connection = self._connection
        return (
            self._writable.is_set()
            and not connection.close_sent
            and not connection.disconnected
            and not self._transport.is_closing()
        )

    def closed(self) -> bool:
        connection = self._connection
        return bool(connection.close_sent or connection.disconnected or self._transport.is_closing())

    async def drained(self) -> None:
        """Until the transport takes writes again (or the connection is lost)."""
        await self._writable.wait()

    def write(self, frame: bytes) -> None:
        self._transport.write(frame)

    def write_many(self, frames: Iterable[bytes]) -> None:
        """Several frames in one system call."""
        self._transport.writelines(frames)

    def release_handshake(self) -> None:
        """Let go of what uvicorn keeps of the handshake for the connection's whole life but never reads again.

        An idle connection's memory is mostly uvicorn's: the upgrade request's and the response's
        headers (kept as `request` and `response`, and once more in the ASGI scope) and an
        `asyncio.Queue` for incoming messages (four empty deques, ~2.5 KiB). After `websocket.accept`
        uvicorn reads neither the request, the response nor the scope's headers, and it uses its
        queue only through `put_nowait`, `get`, `empty` and `qsize`: `Inbox` does the same in a few
        dozen bytes. Called once the connection is authenticated; nothing else is touched.
        """
        connection = self._connection
        if getattr(connection, "request", None) is not None:
            connection.request = None
            connection.response = None
        scope = getattr(connection, "scope", None)
        if isinstance(scope, dict) and scope.get("headers"):
            scope["headers"] = []
        queue = getattr(connection, "queue", None)
        if type(queue) is asyncio.Queue and not getattr(queue, "_getters", True):  # nobody waits in `receive` now
            inbox = Inbox()
            while not queue.empty():
                inbox.put_nowait(queue.get_nowait())
            connection.queue = inbox


class Inbox:
    """The `asyncio.Queue` subset uvicorn's connection uses for incoming messages, for one reader, without deques."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
