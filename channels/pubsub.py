"""The one Redis pub/sub connection of a process: subscribe acks, ping, reconnect.

One SUBSCRIBE per room with at least one local member; each message is parsed once into an
`Envelope` and handed to the one registered listener (the hub).

Why redis-py's `PubSub` is not used: after a dropped connection it reconnects and resubscribes
on its own (its retry calls the reconnect callback even with zero retries), so the events
published meanwhile would vanish without anyone noticing (docs/protocol.md: a client never sees
a silent gap). Here the connection is a raw one owned by one task; when it breaks the listener
is told (`on_lost`), and every room is subscribed again and confirmed (`on_subscribed`) before
the hub sends each member its unsolicited `joined`.

Confirmations are counted per channel: the n-th SUBSCRIBE of a channel on a connection is
confirmed by its n-th `subscribe` reply, so a room re-subscribed while an older SUBSCRIBE was in
flight is confirmed only by its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from channels.backend import Disconnect, PubSubListener
from channels.envelope import Envelope
from channels.metrics import Metrics
from channels.stream import control_channel, room_channel

log = logging.getLogger("roomcast.pubsub")

_decode_control = msgspec.json.Decoder(Disconnect).decode


class RedisPubSub:
    """Implements `channels.backend.PubSub` over one raw Redis connection."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        metrics: Metrics | None = None,
        ping_interval_s: float = 5.0,
        control: bool = True,
    ) -> None:
        """`control=False` for a room shard's connection: control messages travel on the default Redis only."""
        self.redis = redis
        self.prefix = prefix
        self.metrics = metrics if metrics is not None else Metrics()
        self.ping_interval_s = ping_interval_s
        self._listener: PubSubListener | None = None
        self._control = control_channel(prefix) if control else None
        self._room_start = len(prefix) + len(":room:{")
        self._conn: AbstractConnection | None = None
        self._sent: dict[bytes, int] = {}
        self._acked: dict[bytes, int] = {}
        self._target: dict[bytes, int] = {}
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def register(self, listener: PubSubListener) -> None:
        if self._listener is not None:
            raise RuntimeError("a pub/sub connection has one listener")
        self._listener = listener

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _where(self) -> str:
        kwargs = self.redis.connection_pool.connection_kwargs
        return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")

    def _room(self, channel: bytes) -> str:
        return channel[self._room_start : -1].decode()

    async def start(self, wait_s: float = 5.0) -> None:
        """Start the listener task; waits up to `wait_s` for the first connection (not fatal)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="roomcast.pubsub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def subscribe(self, room: str) -> None:
        channel = room_channel(self.prefix, room)
        async with self._send_lock:
            conn = self._conn
            if conn is None:
                return  # the reconnect subscribes every wanted room, this one included
            count = self._sent.get(channel, 0) + 1
            self._sent[channel] = count
            self._target[channel] = count
            try:
                await conn.send_command("SUBSCRIBE", channel)
            except (RedisError, OSError) as err:
                log.warning("pubsub.subscribe_failed", extra={"room": room, "error": type(err).__name__})

    async def unsubscribe(self, room: str) -> None:
        channel = room_channel(self.prefix, room)
        async with self._send_lock:
            conn = self._conn
            if conn is None or self._listener is None or self._listener.wants(room):
                return  # joined again meanwhile: keep the subscription
            self._target.pop(channel, None)
            with contextlib.suppress(RedisError, OSError):
                await conn.send_command("UNSUBSCRIBE", channel)

    def _new_connection(self) -> AbstractConnection:
        pool = self.redis.connection_pool
        kwargs = {
            **pool.connection_kwargs,
            "decode_responses": False,
            "health_check_interval": 0,
            "socket_timeout": None,
            "protocol": 2,
            "client_name": f"{self.prefix}:pubsub",  # so operators (and tests) can find it in CLIENT LIST
        }
        return pool.connection_class(**kwargs)

    async def _run(self) -> None:
        assert self._listener is not None, "register a listener before start"
        listener = self._listener
        delay = 0.05
        first = True
        while True:
            conn = self._new_connection()
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                async with self._send_lock:
                    self._sent.clear()
                    self._acked.clear()
                    self._target.clear()
                    channels = [] if self._control is None else [self._control]
                    for room in listener.wanted_rooms():
                        channel = room_channel(self.prefix, room)
                        channels.append(channel)
                        self._sent[channel] = self._target[channel] = 1
                    if channels:
                        await conn.send_command("SUBSCRIBE", *channels)
                    self._conn = conn
                self._connected.set()
                if not first:
                    self.metrics.pubsub_reconnects.inc()
                    log.info("pubsub.reconnected", extra={"rooms": len(self._sent), "redis": self._where()})
                first = False
                delay = 0.05
                await self._read(conn, listener)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as err:
                log.warning("pubsub.lost", extra={"error": type(err).__name__, "redis": self._where()})
            except Exception:
                log.exception("pubsub.failed")
            finally:
                self._conn = None
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            listener.on_lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _read(self, conn: AbstractConnection, listener: PubSubListener) -> None:
        awaiting_pong = False
        while True:
            response = await conn.read_response(timeout=self.ping_interval_s)
            if response is None:
                if awaiting_pong:
                    raise ConnectionError("no PONG on the pub/sub connection")
                async with self._send_lock:
                    await conn.send_command("PING")
                awaiting_pong = True
                continue
            awaiting_pong = False
            kind = response[0]
            if kind == b"message":
                channel, data = response[1], response[2]
                if channel == self._control:
                    self._on_control(data, listener)
                else:
                    self._on_message(channel, data, listener)
            elif kind == b"subscribe":
                channel = response[1]
                count = self._acked.get(channel, 0) + 1
                self._acked[channel] = count
                if channel != self._control and count == self._target.get(channel):
                    listener.on_subscribed(self._room(channel))

    def _on_control(self, data: bytes, listener: PubSubListener) -> None:
        try:
            message = _decode_control(data)
        except msgspec.DecodeError:
            log.warning("pubsub.control_invalid")
            return
        listener.on_control(message)

    def _on_message(self, channel: bytes, data: bytes, listener: PubSubListener) -> None:
        try:
            epoch, seq, stamp, kind, payload = data.split(b" ", 4)
            envelope = Envelope(self._room(channel), epoch.decode(), int(seq), kind.decode(), payload, float(stamp))
        except ValueError:
            log.warning("pubsub.message_invalid", extra={"channel": channel[:200].decode(errors="replace")})
            return
        listener.on_message(envelope)
