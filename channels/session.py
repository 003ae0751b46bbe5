"""One authenticated connection: its send queue bounded in bytes, its writer, its close deadline.

Frames go straight to the socket when nothing is queued before them and the socket takes them
(the direct path, no task switch). Every frame a connection gets in one loop iteration goes out
in one `write` system call at the end of it (`channels.transport.WriteBatch`): a member of a busy
room gets several events per iteration, and one call carries them all; a lone frame is written
as soon as the iteration's callbacks are done. Under load a large flush may wait for the rest of
its coalescing window (`ROOMCAST_WRITE_DELAY_MS`), and frames of that window join it.
Otherwise frames wait in the queue for a writer task, which exists only while something is
queued (an idle connection has no task, no queue and no timer of its own) and drains it when
the socket is writable again. The queue is bounded in
bytes, not frames (a frame can be one event or a whole snapshot): one more byte than
`max_queue_bytes` drops the queue and closes the socket with 4008, so a client that stops
reading costs the server a bounded amount of memory, whatever it asks for meanwhile.

Deadlines: a close waits at most `close_timeout_s` behind a stalled peer before the connection
is dropped. A credential's expiry is not the session's: `channels.control.Expiries` keeps every
socket's on one timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from channels.codec import encode, frame_type
from channels.envelope import Envelope
from channels.flood import CLOSED, JOIN_LIMIT, Bucket, RateLimit
from channels.metrics import Metrics
from channels.protocol import Close, CloseCode, ServerFrame
from channels.seams import Identity
from channels.subscription import Subscription
from channels.transport import Own, WriteBatch, Writer
from channels.wire import DirectSocket

log = logging.getLogger("roomcast.ws")


class Closing:
    """The last item of a connection's queue: sent through ASGI so the server runs the close handshake."""

    __slots__ = ("code", "reason")
    kind = "close"

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Session:
    """One authenticated connection: what handlers see (`SessionView`) and what the hub feeds."""

    __slots__ = (
        "_batch",
        "_deadline",
        "_direct",
        "_identity",
        "_joins",
        "_metrics",
        "_pending",
        "_pending_bytes",
        "_queue",
        "_queued_bytes",
        "_session_id",
        "_writer",
        "_writing",
        "address",
        "binary",
        "close_code",
        "close_timeout_s",
        "flood",
        "forced",
        "max_queue_bytes",
        "reader",
        "subscriptions",
    )

    def __init__(
        self,
        writer: Writer,
        *,
        session_id: str,
        identity: Identity,
        binary: bool,
        metrics: Metrics,
        max_queue_bytes: int,
        close_timeout_s: float,
        rate_limit: RateLimit,
        address: str = "",
        batch: WriteBatch,
    ) -> None:
        self._writer = writer
        self._direct = writer.socket
        self._batch = batch
        self._metrics = metrics
        self._session_id = session_id
        self._identity = identity
        self.binary = binary
        self.address = address
        self.max_queue_bytes = max_queue_bytes
        self.close_timeout_s = close_timeout_s
        self.subscriptions: dict[str, Subscription] = {}
        self._pending: bytes | list[bytes] | None = None
        """Frames written this loop iteration, for the batch to send in one system call at its end."""
        self._pending_bytes = 0
        """Their size after the first: held to `max_queue_bytes` like the queue, which is where they would wait if each
        were written on its own (a member handed more in one iteration is too slow)."""
        self._queue: deque[Own | Envelope | Closing] | None = None
        """Frames waiting for the socket (created on the first backlog: most connections never have one)."""
        self._queued_bytes = 0
        self._writing: asyncio.Task[None] | None = None
        """The writer task, only while something is queued."""
        self.close_code: int | None = None
        self.reader: asyncio.Task[Any] | None = None
        self.forced = False
        self.flood = Bucket(rate_limit, time.monotonic())
        self._joins: Bucket | None = None
        self._deadline: asyncio.TimerHandle | None = None

    # --- SessionView ---------------------------------------------------------------------------

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
        """Frames are written straight to the socket, not through ASGI `send`."""
        return self._writer.direct

    @property
    def socket(self) -> DirectSocket | None:
        """The uvicorn connection written to directly (None on the ASGI path)."""
        return self._direct

    @property
    def backlogged(self) -> bool:
        return bool(self._queue)

    # --- sending -------------------------------------------------------------------------------

    def encode(self, frame: ServerFrame) -> Own:
        """Encode once for this connection's wire format (raises on an unencodable payload)."""
        return Own(encode(frame, self.binary), frame_type(type(frame)), self.binary)

    def push(self, item: Own | Envelope) -> None:
        """Write at the end of this loop iteration if nothing waits before it and the socket takes it, else queue.

        Never blocks. The fan-out's hot path, inline: no call but the bytes and the metric.
        """
        if self.close_code is not None:
            return
        pending = self._pending
        if pending is not None:  # already writing this iteration: the same system call carries it
            frame = item.wire(self.binary)
            self._pending_bytes += len(frame)
            if self._pending_bytes > self.max_queue_bytes:
                self.overflow()
                return
            if type(pending) is bytes:
                self._pending = [pending, frame]
            else:
                pending.append(frame)  # type: ignore[union-attr]
            self._metrics.frame_out(item.kind)
            return
        direct = self._direct
        if direct is not None and not self._queue and direct.writable():
            self._pending = item.wire(self.binary)
            self._pending_bytes = 0  # the first goes to the socket whatever its size, as an inline write would
            self._batch.add(self)
            self._metrics.frame_out(item.kind)
            return
        size = item.size(self.binary)
        if self._queued_bytes + size > self.max_queue_bytes:
            self.overflow()
            return
        self._enqueue(item, size)

    deliver = push
    """The hub's `Subscriber.deliver`: a room event, in order after everything before it."""

    def flush(self) -> None:
        """Write what this iteration gave the connection in one system call (the batch calls it)."""
        pending, self._pending = self._pending, None
        direct = self._direct
        if pending is None or direct is None or direct.closed():
            return  # a closed socket: the reader sees the disconnect
        try:
            if type(pending) is bytes:
                direct.write(pending)
            else:
                direct.write_many(pending)  # type: ignore[arg-type]
        except Exception:  # the frames are lost: the client must reconnect and recover with `since`
            log.warning("ws.write_failed", extra={"session_id": self._session_id}, exc_info=True)
            self.close(CloseCode.INTERNAL_ERROR, "a write failed; reconnect")

    def send_frame(self, frame: ServerFrame) -> None:
        """Send a server frame to this connection only (handlers may use it for extra frames)."""
        self.push(self.encode(frame))

    def _enqueue(self, item: Own | Envelope | Closing, size: int) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(item)
        self._queued_bytes += size
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write_queued())

    def overflow(self) -> None:
        if self.close_code is not None:
            return
        self._metrics.queue_overflows.inc()
        log.warning(
            "ws.queue_overflow",
            extra={
                "session_id": self._session_id,
                "user_id": self._identity.user_id,
                "queued": len(self._queue or ()),
                "queued_bytes": self._queued_bytes,
            },
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
            self._pending = None
            if self._queue is not None:
                self._queue.clear()
            self._queued_bytes = 0
        else:
            self.flush()  # what this iteration wrote goes before the close frame
        self._enqueue(Closing(code, reason), 0)
        log.info("ws.closing", extra={"session_id": self._session_id, "user_id": self._identity.user_id, "code": code})
        self._deadline = asyncio.get_running_loop().call_later(self.close_timeout_s, self._give_up)

    def _give_up(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.forced = True
            self.reader.cancel()

    async def stop(self) -> None:
        """The connection is over: stop the writer and the close deadline."""
        if self._deadline is not None:
            self._deadline.cancel()
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writing

    async def _write_queued(self) -> None:
        """Drain the queue in order, then end (the next backlog starts another); the close ends it for good."""
        queue, writer = self._queue, self._writer
        assert queue is not None
        try:
            while queue:
                item = queue[0]
                if isinstance(item, Closing):
                    queue.clear()
                    self._queued_bytes = 0
                    await writer.close(item.code, item.reason)
                    return
                taken = await writer.flush(queue, Closing)
                if taken < 0:
                    break  # the peer is gone: the reader sees the disconnect
                self._queued_bytes -= taken
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the peer went away mid-send: the reader sees the disconnect
            log.debug("ws.write_stopped", extra={"session_id": self._session_id, "error": type(err).__name__})
        self._writing = None  # a later backlog (or the close frame) starts a new writer

    # --- flooding ------------------------------------------------------------------------------

    def allow(self, now: float, join: bool = False) -> int | None:
        """None if this frame may be handled; else seconds the client should wait (or -1: closed 4429)."""
        wait = self.flood.take(now)
        if wait is None and join:
            if self._joins is None:
                self._joins = Bucket(JOIN_LIMIT, now)  # most connections join once or twice: made on the first
            wait = self._joins.take(now)
        if wait == CLOSED:
            log.warning("ws.flooding", extra={"session_id": self._session_id, "user_id": self._identity.user_id})
            self.close(CloseCode.FLOODING)
        return wait
