"""One authenticated connection: its send queue bounded in bytes, its writer task, its deadlines.

Frames go straight to the socket when nothing is queued before them and the writer takes them
(the direct path, one `write` per frame, no task switch); otherwise they wait in the queue for
the writer task, which drains it when the socket is writable again. The queue is bounded in
bytes, not frames (a frame can be one event or a whole snapshot): one more byte than
`max_queue_bytes` drops the queue and closes the socket with 4008, so a client that stops
reading costs the server a bounded amount of memory, whatever it asks for meanwhile.

Deadlines: a close waits at most `close_timeout_s` behind a stalled peer before the connection
is dropped; a credential with an expiry closes the socket (4401) at that instant.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from channels.codec import encode, frame_type
from channels.envelope import Envelope
from channels.flood import CLOSED, JOIN_LIMIT, Bucket, RateLimit
from channels.hub import Subscription
from channels.metrics import Metrics
from channels.protocol import Close, CloseCode, ServerFrame
from channels.seams import Identity
from channels.transport import Own, Writer

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
        "_deadline",
        "_direct",
        "_expiry",
        "_identity",
        "_joins",
        "_metrics",
        "_queue",
        "_queued_bytes",
        "_session_id",
        "_wake",
        "_writer",
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
    ) -> None:
        now = time.monotonic()
        self._writer = writer
        self._direct = writer.socket
        self._metrics = metrics
        self._session_id = session_id
        self._identity = identity
        self.binary = binary
        self.address = address
        self.max_queue_bytes = max_queue_bytes
        self.close_timeout_s = close_timeout_s
        self.subscriptions: dict[str, Subscription] = {}
        self._queue: deque[Own | Envelope | Closing] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self.close_code: int | None = None
        self.reader: asyncio.Task[Any] | None = None
        self.forced = False
        self.flood = Bucket(rate_limit, now)
        self._joins = Bucket(JOIN_LIMIT, now)
        self._deadline: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        if identity.expires_at is not None:
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, identity.expires_at - time.time()), self.close, CloseCode.UNAUTHENTICATED, "credential expired"
            )

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
    def backlogged(self) -> bool:
        return bool(self._queue)

    # --- sending -------------------------------------------------------------------------------

    def encode(self, frame: ServerFrame) -> Own:
        """Encode once for this connection's wire format (raises on an unencodable payload)."""
        return Own(encode(frame, self.binary), frame_type(type(frame)), self.binary)

    def push(self, item: Own | Envelope) -> None:
        """Write now if nothing waits before it and the socket takes it, else queue (never blocks)."""
        if self.close_code is not None:
            return
        direct = self._direct  # the fan-out's hot path, inline: one `write` per idle member, no other call
        if direct is not None and not self._queue and direct.writable():
            direct.write(item.wire(self.binary))
            self._metrics.frame_out(item.kind)
            return
        size = item.size(self.binary)
        if self._queued_bytes + size > self.max_queue_bytes:
            self.overflow()
            return
        self._queue.append(item)
        self._queued_bytes += size
        self._wake.set()

    deliver = push
    """The hub's `Subscriber.deliver`: a room event, in order after everything before it."""

    def send_frame(self, frame: ServerFrame) -> None:
        """Send a server frame to this connection only (handlers may use it for extra frames)."""
        self.push(self.encode(frame))

    def overflow(self) -> None:
        if self.close_code is not None:
            return
        self._metrics.queue_overflows.inc()
        log.warning(
            "ws.queue_overflow",
            extra={
                "session_id": self._session_id,
                "user_id": self._identity.user_id,
                "queued": len(self._queue),
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
            self._queue.clear()
            self._queued_bytes = 0
        self._queue.append(Closing(code, reason))
        self._wake.set()
        log.info("ws.closing", extra={"session_id": self._session_id, "user_id": self._identity.user_id, "code": code})
        self._deadline = asyncio.get_running_loop().call_later(self.close_timeout_s, self._give_up)

    def _give_up(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.forced = True
            self.reader.cancel()

    def cancel_timers(self) -> None:
        for handle in (self._deadline, self._expiry):
            if handle is not None:
                handle.cancel()

    async def write_forever(self) -> None:
        """Drain the queue in order until the close is sent (or the peer is gone)."""
        queue, wake, writer = self._queue, self._wake, self._writer
        try:
            while True:
                if not queue:
                    wake.clear()
                    await wake.wait()
                    continue
                item = queue[0]
                if isinstance(item, Closing):
                    queue.clear()
                    self._queued_bytes = 0
                    await writer.close(item.code, item.reason)
                    return
                taken = await writer.flush(queue, Closing)
                if taken < 0:
                    return
                self._queued_bytes -= taken
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the peer went away mid-send: the reader sees the disconnect
            log.debug("ws.write_stopped", extra={"session_id": self._session_id, "error": type(err).__name__})

    # --- flooding ------------------------------------------------------------------------------

    def allow(self, now: float, join: bool = False) -> int | None:
        """None if this frame may be handled; else seconds the client should wait (or -1: closed 4429)."""
        wait = self.flood.take(now)
        if wait is None and join:
            wait = self._joins.take(now)
        if wait == CLOSED:
            log.warning("ws.flooding", extra={"session_id": self._session_id, "user_id": self._identity.user_id})
            self.close(CloseCode.FLOODING)
        return wait
