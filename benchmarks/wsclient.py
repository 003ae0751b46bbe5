"""Cheap WebSocket clients for the load generator, three interchangeable kinds.

- `raw`: an `asyncio.Protocol` with a hand-written parser for server frames (servers never mask)
  and `websockets`' C `apply_mask` for the few frames a client sends. The cheapest per frame.
- `sansio`: the same `asyncio.Protocol` driving `websockets`' sans-I/O `ClientProtocol`.
- `plain`: `websockets.asyncio.client.connect` with a reader task per connection.

All three call `on_message(client, payload_bytes)` for each text or binary message and
`on_close(client, code)` once. Pings are answered; compression is never negotiated.
`python -m benchmarks.load --client KIND` picks one; the README says which is the default and why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 1 << 20
CLIENT_KINDS = ("raw", "sansio", "plain")

OnMessage = Callable[["Client", bytes], None]
OnClose = Callable[["Client", int], None]


class HandshakeError(Exception):
    pass


class Client:
    """One WebSocket connection; `user` is free for the caller's per-connection state."""

    def __init__(self, on_message: OnMessage, on_close: OnClose) -> None:
        self.on_message = on_message
        self.on_close = on_close
        self.user: Any = None
        self.closed = False
        self.close_code = 0

    def send(self, payload: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self.close()

    def _closed(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            self.close_code = code
            self.on_close(self, code)


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + apply_mask(payload, mask)


class _Base(Client, asyncio.Protocol):
    def __init__(self, on_message: OnMessage, on_close: OnClose) -> None:
        super().__init__(on_message, on_close)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(f"connection lost during handshake: {exc}"))
        self._closed(self.close_code or 1006)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class RawClient(_Base):
    """Hand-parsed server frames: a header of 2, 4 or 10 bytes, never masked."""

    def __init__(self, on_message: OnMessage, on_close: OnClose, host: str, path: str) -> None:
        super().__init__(on_message, on_close)
        self.host = host
        self.path = path
        self.buf = bytearray()
        self.key = base64.b64encode(os.urandom(16))
        self.handshaken = False
        self.fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.path.encode(), self.host.encode(), self.key)
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            lines = head.split("\r\n")
            accept = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
            if " 101 " not in lines[0] + " " or accept not in head:
                self.opened.set_exception(HandshakeError(lines[0]))
                self.abort()
                return
            self.handshaken = True
            self.opened.set_result(None)
        pos = 0
        n = len(buf)
        on_message = self.on_message
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            payload = bytes(buf[start:end])
            pos = end
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                if b0 & 0x80:
                    on_message(self, payload)
                else:
                    self.fragments = [payload]
            elif opcode == 0:
                self.fragments.append(payload)
                if b0 & 0x80:
                    on_message(self, b"".join(self.fragments))
                    self.fragments = []
            elif opcode == 9:
                self._write(0xA, payload)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close_code = code
                self._write(8, payload[:2])
                if self.transport is not None:
                    self.transport.close()
                break
        if pos:
            del buf[:pos]

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(opcode, payload))

    def send(self, payload: bytes) -> None:
        self._write(1, payload)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write(8, struct.pack("!H", 1000))
            self.close_code = self.close_code or 1000
            self.transport.close()


class SansIOClient(_Base):
    """`websockets`' sans-I/O protocol on an asyncio Protocol: no task or queue per connection."""

    def __init__(self, on_message: OnMessage, on_close: OnClose, url: str) -> None:
        super().__init__(on_message, on_close)
        self.proto = ClientProtocol(parse_uri(url), max_size=MAX_MESSAGE)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.proto.send_request(self.proto.connect())
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.proto.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif not self.transport.is_closing():
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Response):
                if self.proto.handshake_exc is not None:
                    self.opened.set_exception(HandshakeError(str(self.proto.handshake_exc)))
                else:
                    self.opened.set_result(None)
            elif isinstance(event, Frame):
                if event.opcode in (Opcode.TEXT, Opcode.BINARY):
                    self.on_message(self, bytes(event.data))
                elif event.opcode == Opcode.CLOSE and self.proto.close_rcvd is not None:
                    self.close_code = self.proto.close_rcvd.code
        self._flush()

    def send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.proto.send_text(payload)
                self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.proto.send_close(1000)
                self._flush()
            self.transport.close()


class PlainClient(Client):
    """The ordinary `websockets` asyncio client, one reader task per connection."""

    def __init__(self, on_message: OnMessage, on_close: OnClose) -> None:
        super().__init__(on_message, on_close)
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Future[Any]] = set()

    async def start(self, url: str) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(url, compression=None, max_size=MAX_MESSAGE, ping_interval=None, open_timeout=30)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        code = 1006
        try:
            async for message in self.ws:
                self.on_message(self, message if isinstance(message, bytes) else message.encode())
        except Exception:
            pass
        finally:
            if self.ws.close_code is not None:
                code = self.ws.close_code
            self._closed(code)

    def send(self, payload: bytes) -> None:
        if not self.closed:
            self._spawn(self._send(payload))

    async def _send(self, payload: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.ws.send(payload.decode())

    def close(self) -> None:
        if self.ws is not None:
            self._spawn(self.ws.close())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def abort(self) -> None:
        if self.ws is not None:
            self.ws.transport.abort()


async def open_client(kind: str, url: str, on_message: OnMessage, on_close: OnClose, timeout: float = 30.0) -> Client:
    """Connect and finish the opening handshake; raises on refusal or after `timeout` seconds."""
    if kind == "plain":
        plain = PlainClient(on_message, on_close)
        await asyncio.wait_for(plain.start(url), timeout)
        return plain
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    protocol: _Base
    if kind == "raw":
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        protocol = RawClient(on_message, on_close, f"{host}:{port}", target)
    elif kind == "sansio":
        protocol = SansIOClient(on_message, on_close, url)
    else:
        raise ValueError(f"unknown client kind {kind!r}")
    await asyncio.wait_for(loop.create_connection(lambda: protocol, host, port), timeout)
    try:
        await asyncio.wait_for(asyncio.shield(protocol.opened), timeout)
    except BaseException:
        protocol.abort()
        raise
    return protocol
