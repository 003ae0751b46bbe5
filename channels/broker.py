"""Redis fan-out: encode once, per-room seq and epoch, history for recovery, local subscriptions.

Publishing (any process: web, worker, a test) is one Lua call that, atomically in Redis,
assigns the room's next `seq`, splices it into the already-encoded JSON, appends the result to
the room's history and PUBLISHes it once. So seq grows by exactly 1 per event whichever process
publishes, and history and live delivery always agree.

Receiving (server processes that run the gateway): one pub/sub connection per process, one
SUBSCRIBE per room with at least one local member (subscribe on the first, unsubscribe after
the last). Each message is parsed once and the same bytes go to every local member's queue,
converted to MessagePack at most once, and only if a member asked for it.

Why redis-py's `PubSub` is not used: after a dropped connection it reconnects and resubscribes
on its own (its retry calls the reconnect callback even with zero retries), so the events
published meanwhile would vanish without anyone noticing (SPEC: "a client never sees a silent
gap"). Here the pub/sub connection is a raw connection owned by one task; when it breaks,
every local member is marked as possibly behind, and once the subscriptions are back each one
gets an unsolicited `joined` with a fresh snapshot (through `on_resync`). The same happens for
one room when an event shows that its epoch changed or that seq jumped.

Redis layout, `<p>` being the configured prefix and `{room}` a cluster hash tag:
- `<p>:room:{room}:meta` hash `epoch`, `seq`; `<p>:room:{room}:history` list of
  `<13-digit ms> <type> <json>`, trimmed to the last `history_events`, keeping anything younger
  than `history_s` seconds.
- channel `<p>:room:{room}`: `<epoch> <seq> <published_at> <type> <json>`; channel
  `<p>:control`: JSON control messages (disconnect a user's sockets on every process).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgspec
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from channels.metrics import Metrics
from channels.protocol import Event
from channels.wire import ws_frame

log = logging.getLogger("roomcast.broker")

PUBLISH_LUA: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
elseif redis.call('EXISTS', KEYS[2]) == 0 and tonumber(redis.call('HGET', KEYS[1], 'seq')) > 0 then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wire = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
redis.call('RPUSH', KEYS[2], string.format('%013d', now) .. ' ' .. ARGV[7] .. ' ' .. wire)
local len = redis.call('LLEN', KEYS[2])
local keep = tonumber(ARGV[4])
local cutoff = now - tonumber(ARGV[5])
while len > keep do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if tonumber(string.sub(head, 1, 13)) >= cutoff then break end
  redis.call('LPOP', KEYS[2])
  len = len - 1
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[3], epoch .. ' ' .. seq .. ' ' .. ARGV[8] .. ' ' .. ARGV[7] .. ' ' .. wire)
return seq
"""
"""KEYS: meta, history. ARGV: json without seq, fresh epoch, channel, keep events, keep ms, key ttl s, type, time."""

CURSOR_LUA: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq
if not epoch then
  epoch = ARGV[3]
  seq = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
else
  seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local since = tonumber(ARGV[1])
if since < 0 or since > seq or (ARGV[2] ~= '' and ARGV[2] ~= epoch) then return {epoch, seq, 0, {}} end
if since == seq then return {epoch, seq, 1, {}} end
if seq - since > tonumber(ARGV[5]) then return {epoch, seq, 0, {}} end
local len = redis.call('LLEN', KEYS[2])
local head = seq - len + 1
if since + 1 < head then return {epoch, seq, 0, {}} end
return {epoch, seq, 1, redis.call('LRANGE', KEYS[2], since + 1 - head, -1)}
"""
"""KEYS: meta, history. ARGV: since (-1: none), client epoch ('' : none), fresh epoch, key ttl s, max replay.

Creates the room's epoch if it has none, so a joiner of a silent room still gets one."""


class BrokerUnavailable(Exception):
    """Redis cannot be reached (or did not confirm a subscription in time); the caller answers `unavailable`."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Envelope:
    """One room event, parsed once per process and shared by every local member of its room.

    `message(binary)` is the ready-to-send ASGI message: the JSON text as received, or the same
    object as MessagePack, converted the first time a MessagePack member needs it.
    """

    __slots__ = ("_binary", "_packed", "_text", "_wire", "data", "epoch", "kind", "published_at", "room", "seq")

    def __init__(self, room: str, epoch: str, seq: int, kind: str, data: bytes, published_at: float | None) -> None:
        self.room = room
        self.epoch = epoch
        self.seq = seq
        self.kind = kind
        self.data = data
        """The event's JSON, `seq` included."""
        self.published_at = published_at
        """`time.time()` when `publish` was called; None for replayed history."""
        self._text: dict[str, Any] | None = None
        self._binary: dict[str, Any] | None = None
        self._packed: bytes | None = None
        self._wire: list[bytes | None] = [None, None]

    def packed(self) -> bytes:
        """The event as MessagePack, converted once."""
        if self._packed is None:
            self._packed = msgspec.msgpack.encode(msgspec.json.decode(self.data))
        return self._packed

    def message(self, binary: bool) -> dict[str, Any]:
        """The ASGI `websocket.send` message for a member speaking `binary` (MessagePack) or JSON."""
        if binary:
            if self._binary is None:
                self._binary = {"type": "websocket.send", "bytes": self.packed()}
            return self._binary
        if self._text is None:
            self._text = {"type": "websocket.send", "text": self.data.decode()}
        return self._text

    def wire(self, binary: bool) -> bytes:
        """The whole WebSocket frame, the same bytes for every member speaking the same format."""
        frame = self._wire[binary]
        if frame is None:
            frame = self._wire[binary] = ws_frame(self.packed() if binary else self.data, binary)
        return frame


class Subscriber(Protocol):
    """What the broker needs of a connection: a non-blocking way to queue frames."""

    @property
    def session_id(self) -> str: ...

    def deliver(self, envelope: Envelope) -> None:
        """Queue the event without blocking (a full queue closes the connection); never raises."""
        ...

    def overflow(self) -> None:
        """Too many events piled up while this connection was joining: close it (4008)."""
        ...


class SubState(enum.Enum):
    JOINING = "joining"
    """A client `join` is in flight: live events are buffered until its `joined` is queued."""
    RESYNCING = "resyncing"
    """The process may have missed events: buffered until the unsolicited `joined` is queued."""
    LIVE = "live"
    DETACHED = "detached"


class Subscription:
    """One local member of one room: where it is in the room's seq and what waits for it."""

    __slots__ = ("buffer", "epoch", "generation", "resync_after", "room", "seq", "state", "subscriber")

    def __init__(self, subscriber: Subscriber, room: str) -> None:
        self.subscriber = subscriber
        self.room = room
        self.epoch = ""
        self.seq = 0
        self.state = SubState.JOINING
        self.buffer: list[Envelope] = []
        self.generation = 0
        """Bumped by every join or resync; an activation for an older generation is dropped."""
        self.resync_after = False
        """The connection broke while this member was joining: resync right after it activates."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a room stands, read atomically in Redis: epoch, last seq, and the events after `since`."""

    room: str
    epoch: str
    seq: int
    recovered: bool
    """True when history covers everything after `since` (then `events` holds exactly that)."""
    events: list[Envelope]


class _Room:
    __slots__ = ("channel", "name", "needs_resync", "ready", "resync_again", "resync_task", "subs", "target", "waiters")

    def __init__(self, name: str, channel: bytes) -> None:
        self.name = name
        self.channel = channel
        self.subs: dict[str, Subscription] = {}
        self.ready = False
        """The SUBSCRIBE of this room was confirmed on the current pub/sub connection."""
        self.target = 0
        """Which confirmation of `channel` on the current connection is this room's own."""
        self.waiters: list[asyncio.Future[None]] = []
        self.needs_resync = False
        self.resync_task: asyncio.Task[None] | None = None
        self.resync_again = False


class Disconnect(msgspec.Struct, kw_only=True, tag="disconnect", tag_field="op"):
    """The control message that closes sockets on every process (`Broker.disconnect_user`).

    A socket is closed when its user is `user_id` (or `user_id` is `*`) and every given filter
    matches: it joined a room in `room_prefix`; it was opened with one of `credentials`; it was
    not opened with one of `except_credentials`.
    """

    user_id: str
    code: int
    room_prefix: str | None = None
    credentials: list[str] | None = None
    except_credentials: list[str] = []
    reason: str = ""


ResyncHandler = Callable[[str, list[tuple[Subscription, int]]], Awaitable[None]]
ControlHandler = Callable[[Disconnect], None]
_decode_control = msgspec.json.Decoder(Disconnect).decode


class Broker:
    """Publishes room events to every server process through Redis, and fans them out locally.

    `publish` works in any process. The receiving side (`start`, `attach`, `cursor`,
    `activate`, `detach`) is driven by the gateway; `on_resync` and `on_control` are its hooks.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        metrics: Metrics | None = None,
        history_events: int = 1000,
        history_s: int = 600,
        key_ttl_s: int = 86400,
        max_replay: int = 1000,
        max_buffer: int = 2000,
        subscribe_timeout_s: float = 5.0,
        ping_interval_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.metrics = metrics if metrics is not None else Metrics()
        self.history_events = history_events
        self.history_s = history_s
        self.key_ttl_s = key_ttl_s
        self.max_replay = max_replay
        """A `since` further back than this gets a snapshot: replaying more would overflow the send queue."""
        self.max_buffer = max_buffer
        self.subscribe_timeout_s = subscribe_timeout_s
        self.ping_interval_s = ping_interval_s
        self.on_resync: ResyncHandler | None = None
        self.on_control: ControlHandler | None = None
        self._publish_script = redis.register_script(PUBLISH_LUA)
        self._cursor_script = redis.register_script(CURSOR_LUA)
        self._control_channel = f"{prefix}:control".encode()
        self._rooms: dict[str, _Room] = {}
        self._by_channel: dict[bytes, _Room] = {}
        self._conn: AbstractConnection | None = None
        self._sent: dict[bytes, int] = {}
        self._acked: dict[bytes, int] = {}
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    # --- names -----------------------------------------------------------------------------

    def _meta_key(self, room: str) -> str:
        return f"{self.prefix}:room:{{{room}}}:meta"

    def _history_key(self, room: str) -> str:
        return f"{self.prefix}:room:{{{room}}}:history"

    def channel(self, room: str) -> bytes:
        """The pub/sub channel of `room` (tests count its subscribers with PUBSUB NUMSUB)."""
        return f"{self.prefix}:room:{{{room}}}".encode()

    # --- publishing (any process) ----------------------------------------------------------

    async def publish(self, event: Event) -> int:
        """Send `event` to everyone in `event.room` on every server process; returns its seq.

        Call it after the change the event describes is committed, so that a snapshot read by a
        joiner that sees this seq already contains it. Raises a `redis` error if Redis is down.
        """
        if not event.room:
            raise ValueError("an event needs a room")
        payload = msgspec.json.encode(event)
        kind = str(type(event).__struct_config__.tag).replace(" ", "_")
        seq = await self._publish_script(
            keys=[self._meta_key(event.room), self._history_key(event.room)],
            args=[
                payload,
                secrets.token_hex(8),
                self.channel(event.room),
                self.history_events,
                self.history_s * 1000,
                self.key_ttl_s,
                kind,
                f"{time.time():.6f}",
            ],
        )
        self.metrics.published.labels(kind).inc()
        return int(seq)

    async def disconnect_user(
        self,
        user_id: str,
        room_prefix: str | None,
        code: int,
        *,
        credentials: Iterable[str] | None = None,
        except_credentials: Iterable[str] = (),
        reason: str = "",
    ) -> None:
        """Close, on every server process, the matching sockets of `user_id` with `code`.

        With `room_prefix`, only sockets that joined a room in it: a room is in `room_prefix` when
        it equals it or starts with it followed by `:` (so `meeting:<id>` covers
        `meeting:<id>:moderation`). With `credentials`, only sockets opened with one of them
        (`Identity.credential`); sockets opened with one of `except_credentials` are spared.
        `user_id="*"` means every user (then `room_prefix` or `credentials` is required).
        Best effort: a process whose pub/sub connection is down at that instant misses it (the
        gateway's periodic credential check bounds how long a revoked credential's socket lives).
        """
        if user_id == "*" and room_prefix is None and credentials is None:
            raise ValueError("disconnecting every user needs a room_prefix or credentials")
        message = Disconnect(
            user_id=user_id,
            code=int(code),  # a `Close` value is an int subclass, which msgspec does not encode
            room_prefix=room_prefix,
            credentials=None if credentials is None else list(credentials),
            except_credentials=list(except_credentials),
            reason=reason,
        )
        await self.redis.publish(self._control_channel, msgspec.json.encode(message))

    # --- reading a room's position ----------------------------------------------------------

    async def cursor(self, room: str, since: int | None = None, epoch: str | None = None) -> Cursor:
        """The room's epoch and seq and, if `since` is still covered by history, the events after it.

        `epoch=None` with a `since` trusts the client that it means the current epoch.
        """
        try:
            raw = await self._cursor_script(
                keys=[self._meta_key(room), self._history_key(room)],
                args=[
                    -1 if since is None else since,
                    epoch or "",
                    secrets.token_hex(8),
                    self.key_ttl_s,
                    self.max_replay,
                ],
            )
        except (RedisError, OSError) as err:
            raise BrokerUnavailable(f"redis: {type(err).__name__}") from err
        room_epoch, seq, recovered, entries = _text(raw[0]), int(raw[1]), bool(int(raw[2])), raw[3]
        events: list[Envelope] = []
        if recovered and since is not None:
            for offset, entry in enumerate(entries):
                _, kind, data = bytes(entry).split(b" ", 2)
                events.append(Envelope(room, room_epoch, since + 1 + offset, kind.decode(), data, None))
        return Cursor(room, room_epoch, seq, recovered, events)

    # --- local membership (gateway processes) ------------------------------------------------

    async def attach(self, subscriber: Subscriber, room: str) -> tuple[Subscription, int]:
        """Make `subscriber` a local member of `room`, buffering its events until `activate`.

        Returns once this process is subscribed to the room's channel, so that a `cursor` read
        afterwards plus the buffered events cover everything (the join race). Re-attaching a
        member starts a fresh join. Returns the subscription and the generation to activate.
        """
        entry = self._rooms.get(room)
        created = entry is None
        if entry is None:
            entry = self._rooms[room] = _Room(room, self.channel(room))
            self._by_channel[entry.channel] = entry
            self.metrics.rooms.set(len(self._rooms))
        # Registered before any await, so a concurrent last-member-out cannot drop the room under us.
        sub = entry.subs.get(subscriber.session_id)
        if sub is None:
            sub = entry.subs[subscriber.session_id] = Subscription(subscriber, room)
        sub.state = SubState.JOINING
        sub.buffer = []
        sub.generation += 1
        generation = sub.generation
        if created and self._conn is not None:
            await self._subscribe(entry)
        if not entry.ready:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, self.subscribe_timeout_s)
            except (TimeoutError, BrokerUnavailable) as err:
                self.detach(sub)
                raise BrokerUnavailable("the pub/sub connection to Redis is not available") from err
            except BaseException:
                self.detach(sub)
                raise
        return sub, generation

    def activate(
        self, sub: Subscription, generation: int, epoch: str, seq: int, prelude: Callable[[], None] | None = None
    ) -> bool:
        """Switch a member from buffering to live at (`epoch`, `seq`), in order and without awaiting.

        `prelude` queues what must come first (the `joined` frame, replayed events); then the
        buffered events after `seq` follow and the member is live. False if a newer join or
        resync of this member superseded this one (nothing is queued then).
        """
        if sub.state not in (SubState.JOINING, SubState.RESYNCING) or sub.generation != generation:
            return False
        if prelude is not None:
            prelude()
        sub.epoch, sub.seq = epoch, seq
        buffered, sub.buffer = sub.buffer, []
        sub.state = SubState.LIVE
        behind = sub.resync_after
        sub.resync_after = False
        for envelope in buffered:
            if not self._deliver(sub, envelope):
                behind = True
                break
        if behind:
            entry = self._rooms.get(sub.room)
            if entry is not None:
                self._request_resync(entry)
        return True

    def detach(self, sub: Subscription) -> None:
        """Remove a member; the last one out unsubscribes this process from the room's channel."""
        entry = self._rooms.get(sub.room)
        sub.state = SubState.DETACHED
        sub.buffer = []
        if entry is None or entry.subs.get(sub.subscriber.session_id) is not sub:
            return
        del entry.subs[sub.subscriber.session_id]
        if entry.subs:
            return
        del self._rooms[entry.name]
        del self._by_channel[entry.channel]
        self.metrics.rooms.set(len(self._rooms))
        for waiter in entry.waiters:
            if not waiter.done():
                waiter.set_exception(BrokerUnavailable("room left"))
        if self._conn is not None:
            self._spawn(self._unsubscribe(entry.channel))

    def local_rooms(self) -> int:
        return len(self._rooms)

    # --- the pub/sub connection ------------------------------------------------------------

    async def start(self, wait_s: float = 5.0) -> None:
        """Start the pub/sub listener; waits up to `wait_s` for the first connection (not fatal)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="roomcast.broker.pubsub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait_s)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    @property
    def connected(self) -> bool:
        return self._conn is not None

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
        delay = 0.05
        first = True
        while True:
            conn = self._new_connection()
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                async with self._send_lock:
                    self._sent.clear()
                    self._acked.clear()
                    channels = [self._control_channel]
                    for entry in self._rooms.values():
                        channels.append(entry.channel)
                        self._sent[entry.channel] = 1
                        entry.target = 1
                    await conn.send_command("SUBSCRIBE", *channels)
                    self._conn = conn
                self._connected.set()
                if not first:
                    self.metrics.pubsub_reconnects.inc()
                    log.info("broker.pubsub_reconnected", extra={"rooms": len(self._rooms)})
                first = False
                delay = 0.05
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as err:
                log.warning("broker.pubsub_lost", extra={"error": type(err).__name__, "rooms": len(self._rooms)})
            except Exception:
                log.exception("broker.pubsub_failed", extra={"rooms": len(self._rooms)})
            finally:
                self._conn = None
                self._connected.clear()
                for entry in self._rooms.values():
                    entry.ready = False
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            # Whatever was published from now until the subscriptions are back is lost for us:
            # every local member must be told (unsolicited `joined`) once they are.
            for entry in list(self._rooms.values()):
                self._mark_behind(entry)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _read(self, conn: AbstractConnection) -> None:
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
                if response[1] == self._control_channel:
                    self._on_control(response[2])
                else:
                    self._on_message(response[1], response[2])
            elif kind == b"subscribe":
                self._on_subscribed(response[1])

    async def _subscribe(self, entry: _Room) -> None:
        async with self._send_lock:
            conn = self._conn
            if conn is None or self._by_channel.get(entry.channel) is not entry:
                return  # the reconnect subscribes every room, this one included
            count = self._sent.get(entry.channel, 0) + 1
            self._sent[entry.channel] = count
            entry.target = count
            try:
                await conn.send_command("SUBSCRIBE", entry.channel)
            except (RedisError, OSError) as err:
                log.warning("broker.subscribe_failed", extra={"room": entry.name, "error": type(err).__name__})

    async def _unsubscribe(self, channel: bytes) -> None:
        async with self._send_lock:
            conn = self._conn
            if conn is None or channel in self._by_channel:
                return  # joined again meanwhile: keep the subscription
            with contextlib.suppress(RedisError, OSError):
                await conn.send_command("UNSUBSCRIBE", channel)

    def _on_subscribed(self, channel: bytes) -> None:
        count = self._acked.get(channel, 0) + 1
        self._acked[channel] = count
        entry = self._by_channel.get(channel)
        if entry is None or entry.ready or count < entry.target:
            return
        entry.ready = True
        waiters, entry.waiters = entry.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if entry.needs_resync:
            self._start_resync(entry)

    def _on_control(self, data: bytes) -> None:
        try:
            message = _decode_control(data)
        except msgspec.DecodeError:
            log.warning("broker.control_invalid")
            return
        if self.on_control is not None:
            self.on_control(message)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        entry = self._by_channel.get(channel)
        if entry is None:
            return
        try:
            epoch, seq, stamp, kind, payload = data.split(b" ", 4)
            published_at = float(stamp)
            envelope = Envelope(entry.name, epoch.decode(), int(seq), kind.decode(), payload, published_at)
        except ValueError:
            log.warning("broker.message_invalid", extra={"room": entry.name})
            return
        behind = False
        for sub in tuple(entry.subs.values()):
            if sub.state is SubState.LIVE:
                if not self._deliver(sub, envelope):
                    behind = True
            elif len(sub.buffer) < self.max_buffer:
                sub.buffer.append(envelope)
            else:
                sub.subscriber.overflow()
        if entry.subs:  # once per event: every local member has it written (or queued behind a slow socket)
            self.metrics.fanout_latency.observe(max(0.0, time.time() - published_at))
        if behind:
            self._request_resync(entry)

    @staticmethod
    def _deliver(sub: Subscription, envelope: Envelope) -> bool:
        """Queue one event for a live member; False if it shows the member may have missed some."""
        if envelope.epoch == sub.epoch:
            if envelope.seq == sub.seq + 1:
                sub.seq = envelope.seq
                sub.subscriber.deliver(envelope)
                return True
            if envelope.seq <= sub.seq:
                return True  # already covered by the member's cursor (the join race)
        return False

    # --- resync: the unsolicited `joined` ------------------------------------------------------

    def _mark_behind(self, entry: _Room) -> None:
        """Start buffering for every member of `entry`; a resync follows once subscribed."""
        for sub in entry.subs.values():
            if sub.state is SubState.LIVE:
                sub.state = SubState.RESYNCING
                sub.buffer = []
                sub.generation += 1
            elif sub.state is SubState.JOINING:
                sub.resync_after = True
        entry.needs_resync = True

    def _request_resync(self, entry: _Room) -> None:
        if entry.resync_task is not None and not entry.resync_task.done():
            entry.resync_again = True
            return
        self._mark_behind(entry)
        if entry.ready:
            self._start_resync(entry)

    def _start_resync(self, entry: _Room) -> None:
        if entry.resync_task is not None and not entry.resync_task.done():
            entry.resync_again = True
            return
        entry.resync_task = asyncio.create_task(self._resync(entry), name=f"roomcast.resync:{entry.name}")

    async def _resync(self, entry: _Room) -> None:
        while True:
            entry.needs_resync = False
            entry.resync_again = False
            members = [(s, s.generation) for s in entry.subs.values() if s.state is SubState.RESYNCING]
            if members and self.on_resync is not None:
                self.metrics.resyncs.inc()
                log.info("broker.resync", extra={"room": entry.name, "members": len(members)})
                try:
                    await self.on_resync(entry.name, members)
                except Exception:
                    log.exception("broker.resync_failed", extra={"room": entry.name})
            if not entry.resync_again or self._rooms.get(entry.name) is not entry:
                return
            self._mark_behind(entry)
            if not entry.ready:
                return  # the subscription confirmation starts the next round

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def room_matches(room: str, room_prefix: str) -> bool:
    """`room` is `room_prefix` itself or one of its sub-rooms (`meeting:<id>` covers `meeting:<id>:moderation`)."""
    return room == room_prefix or room.startswith(room_prefix + ":")


__all__: Sequence[str] = [
    "Broker",
    "BrokerUnavailable",
    "Cursor",
    "Disconnect",
    "Envelope",
    "SubState",
    "Subscriber",
    "Subscription",
    "room_matches",
]
