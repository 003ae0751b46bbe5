"""Socket writers: the seam between a session's send queue and its socket, chosen once per connection.

- `DirectWriter`: behind uvicorn's `websockets-sansio` connection (what `roomcast serve` runs),
  ready-made frame bytes go straight to the transport (`channels.wire.DirectSocket`): the
  session writes an idle socket inline through `socket` (one `write` per frame, no task switch,
  no re-encoding per member), and this writer drains a backlog, several frames per system call.
- `WriteBatch`: the direct path's frames of one loop iteration, one system call per socket at its
  end (several events ready for one member in one iteration cost one `write`, not one each).
- `AsgiWriter`: anything else (another server, another `--ws`, a middleware wrapping `send`):
  every frame through ASGI `send`, one at a time.

`choose_writer` picks one when the connection is accepted; the gateway logs which at start
(`ws.write_path`) and per connection (`ws.authenticated ... direct=`), and a test fails if the
direct path is silently not taken with the implementation `roomcast serve` ships.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from channels.metrics import Metrics
from channels.wire import DirectSocket, ws_frame

RawSend = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("roomcast.ws")


class Flushable(Protocol):
    def flush(self) -> None:
        """Write what this loop iteration gave the connection, in one system call."""
        ...


LARGE_FLUSH = 100
"""Connections in one flush from which write coalescing may hold it: a smaller flush is cheap and never waits."""


class WriteBatch:
    """The connections written to in this loop iteration; each is flushed once, when the iteration's callbacks are done.

    The fan-out hands a room's event to every member in one synchronous pass, and the pub/sub
    reader hands over every event of one read before it yields: a member of a busy room often
    gets several frames before the loop runs again. The first frame of an iteration schedules one
    callback (`call_soon`, no timer: a lone frame is written as soon as the current callbacks are
    done); the callback writes each connection's frames in one system call. One per process.

    Write coalescing under load (`delay_s`, `ROOMCAST_WRITE_DELAY_MS`): a large flush (at least
    `LARGE_FLUSH` connections, a big room's event) that comes less than `delay_s` after the
    previous large one waits until `delay_s` after it, and whatever arrives meanwhile joins it. A
    member of a busy big room then gets every event of that window in one system call: at most
    one write per `delay_s` per connection where there were one per event (the fan-out's cost is
    mostly those calls, on both ends of the socket). Centrifugo PRO's `client.write_delay` does
    the same unconditionally; here an event after a quiet spell, and any small flush (replies,
    small rooms), still goes out in the iteration it arrives, so latency at low load is unchanged
    and the added wait is never more than `delay_s`.
    """

    __slots__ = ("_after", "_delay_s", "_held", "_last_large", "_ready")

    def __init__(self, delay_s: float = 0.0) -> None:
        self._ready: list[Flushable] = []
        self._after: list[tuple[Callable[[float], None], float]] = []
        self._delay_s = delay_s
        self._last_large = float("-inf")
        """Loop time of the last large flush."""
        self._held = False
        """The pending flush waits for the end of the coalescing window (a timer is set)."""

    def add(self, connection: Flushable) -> None:
        """`connection` has frames to write this iteration (called once per connection per iteration)."""
        ready = self._ready
        ready.append(connection)
        if len(ready) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def after_write(self, callback: Callable[[float], None], argument: float) -> None:
        """Call `callback(argument)` once what is ready to be written now is written (soon, if nothing is)."""
        if self._ready:
            self._after.append((callback, argument))
        else:
            asyncio.get_running_loop().call_soon(callback, argument)

    def _flush(self) -> None:
        ready = self._ready
        if self._delay_s and len(ready) >= LARGE_FLUSH:
            loop = asyncio.get_running_loop()
            now = loop.time()
            due = self._last_large + self._delay_s
            if now < due and not self._held:
                self._held = True  # frames added meanwhile join `ready` (`add` schedules nothing more)
                loop.call_at(due, self._flush)
                return
            self._last_large = now
        self._held = False
        self._ready = []
        for connection in ready:
            try:
                connection.flush()
            except Exception:  # a bug, not a broken socket (`flush` closes those): the others still get theirs
                log.warning("ws.flush_failed", exc_info=True)
        if self._after:
            after, self._after = self._after, []
            for callback, argument in after:
                callback(argument)


class Frame(Protocol):
    """What waits in a send queue: a room event (`Envelope`) or a frame of the connection's own (`Own`)."""

    kind: str

    def size(self, binary: bool) -> int: ...

    def message(self, binary: bool) -> dict[str, Any]: ...

    def wire(self, binary: bool) -> bytes: ...


class Own:
    """A frame for one connection only (a reply, an error, a `joined`), encoded for its wire format."""

    __slots__ = ("binary", "kind", "payload")

    def __init__(self, payload: bytes, kind: str, binary: bool) -> None:
        self.payload = payload
        self.kind = kind
        self.binary = binary

    def size(self, binary: bool) -> int:
        return len(self.payload)

    # `binary` is ignored (the frame was encoded for its connection): the signature is Envelope's
    def message(self, binary: bool) -> dict[str, Any]:
        if self.binary:
            return {"type": "websocket.send", "bytes": self.payload}
        return {"type": "websocket.send", "text": self.payload.decode()}

    def wire(self, binary: bool) -> bytes:
        return ws_frame(self.payload, self.binary)


class Writer(Protocol):
    direct: bool
    socket: DirectSocket | None
    """The direct path's socket (None for ASGI): the session writes idle sockets through it inline."""

    async def flush(self, queue: deque[Any], stop: type) -> int:
        """Write queued frames from the left, up to (not including) an item of type `stop`.

        Returns the bytes taken off the queue (0 while waiting for the socket), or -1 once the
        peer is gone (the reader sees the disconnect).
        """
        ...

    async def close(self, code: int, reason: str) -> None: ...


class AsgiWriter:
    direct = False
    socket: DirectSocket | None = None

    def __init__(self, send: RawSend, binary: bool, metrics: Metrics) -> None:
        self._send, self._binary, self._metrics = send, binary, metrics

    async def flush(self, queue: deque[Any], stop: type) -> int:
        frame = queue[0]  # stays queued while in flight: the session is backed up until `send` returns
        await self._send(frame.message(self._binary))
        self._metrics.frame_out(frame.kind)
        if not queue or queue[0] is not frame:
            return 0  # the queue was dropped meanwhile (4008)
        queue.popleft()
        return int(frame.size(self._binary))

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": int(code), "reason": reason})


class DirectWriter:
    direct = True

    def __init__(self, socket: DirectSocket, send: RawSend, binary: bool, metrics: Metrics) -> None:
        self._socket, self._send, self._binary, self._metrics = socket, send, binary, metrics
        self.socket: DirectSocket | None = socket

    async def flush(self, queue: deque[Any], stop: type) -> int:
        socket = self._socket
        if socket.writable():
            binary, metrics = self._binary, self._metrics
            frames: list[bytes] = []
            taken = 0
            while queue and not isinstance(queue[0], stop):
                frame = queue.popleft()
                frames.append(frame.wire(binary))
                taken += frame.size(binary)
                metrics.frame_out(frame.kind)
            socket.write_many(frames)  # everything queued, in one system call
            return taken
        if socket.closed():
            return -1
        await socket.drained()  # the first frame stays first in the queue: later frames queue behind it
        return 0

    async def close(self, code: int, reason: str) -> None:
        # Through ASGI, so uvicorn runs the close handshake and keeps its own state.
        await self._send({"type": "websocket.close", "code": int(code), "reason": reason})


def choose_writer(asgi_send: Any, binary: bool, metrics: Metrics) -> Writer:
    """The direct writer if `asgi_send` is uvicorn's sans-I/O connection's own `send`, else ASGI."""
    socket = DirectSocket.of(asgi_send)
    if socket is not None:
        return DirectWriter(socket, asgi_send, binary, metrics)
    return AsgiWriter(asgi_send, binary, metrics)
