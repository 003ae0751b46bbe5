"""The room stream and pub/sub in memory: the same interfaces as `channels.stream` and `channels.pubsub`.

For the core's unit tests (tests/channels/): no Redis, no subprocess. One `MemoryBroker` plays
Redis (seq, epoch, history, delivery); each `MemoryPubSub` plays one server process's pub/sub
connection. Delivery and subscription confirmations go through the event loop (`call_soon`),
in order, as they would over a socket; tests can break a connection (`break_connection`,
everything published meanwhile is lost for that process), restore it (`restore`), and lose a
room's counter and history (`lose_room`, as a Redis restart without persistence would).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Iterable, Sequence

import msgspec

from channels.backend import Cursor, Disconnect, PubSubListener
from channels.envelope import Envelope
from channels.protocol import Event
from channels.stream import disconnect_message, event_kind


class _Room:
    __slots__ = ("epoch", "history", "seq")

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self.history: deque[tuple[str, bytes]] = deque()


class MemoryBroker:
    """Implements `channels.backend.Stream` (and so `Publisher`) for every `MemoryPubSub` made from it."""

    def __init__(self, *, history_events: int = 1000, max_replay: int = 1000) -> None:
        self.history_events = history_events
        self.max_replay = max_replay
        self._rooms: dict[str, _Room] = {}
        self._pubsubs: list[MemoryPubSub] = []
        self.published = 0

    def pubsub(self) -> MemoryPubSub:
        """A new process's pub/sub connection to this broker."""
        pubsub = MemoryPubSub()
        self._pubsubs.append(pubsub)
        return pubsub

    def lose_room(self, room: str) -> None:
        """Forget the room's counter and history: its next publish or cursor starts a new epoch."""
        self._rooms.pop(room, None)

    def _room(self, room: str) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        return state

    async def publish(self, event: Event) -> int:
        if not event.room:
            raise ValueError("an event needs a room")
        payload = msgspec.json.encode(event)
        kind = event_kind(type(event))
        state = self._room(event.room)
        state.seq += 1
        wire = payload[:-1] + b',"seq":%d}' % state.seq
        state.history.append((kind, wire))
        while len(state.history) > self.history_events:
            state.history.popleft()
        self.published += 1
        now = time.time()
        for pubsub in self._pubsubs:
            pubsub._deliver(Envelope(event.room, state.epoch, state.seq, kind, wire, now))
        return state.seq

    async def publish_many(self, events: Sequence[Event]) -> list[int]:
        """Like the Redis script: every event is checked first, then each is published in turn."""
        if not all(event.room for event in events):
            raise ValueError("an event needs a room")
        return [await self.publish(event) for event in events]

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
        message = disconnect_message(user_id, room_prefix, code, credentials, except_credentials, reason)
        for pubsub in self._pubsubs:
            pubsub._control(message)

    async def cursor(self, room: str, since: int | None = None, epoch: str | None = None) -> Cursor:
        """The same answers as `lua/cursor.lua`."""
        state = self._room(room)
        seq = state.seq
        not_recovered = Cursor(room, state.epoch, seq, False, [])
        if since is None or since < 0 or since > seq or (epoch and epoch != state.epoch):
            return not_recovered
        if since == seq:
            return Cursor(room, state.epoch, seq, True, [])
        if seq - since > self.max_replay:
            return not_recovered
        head = seq - len(state.history) + 1
        if since + 1 < head:
            return not_recovered
        entries = list(state.history)[since + 1 - head :]
        events = [
            Envelope(room, state.epoch, since + 1 + n, kind, data, None) for n, (kind, data) in enumerate(entries)
        ]
        return Cursor(room, state.epoch, seq, True, events)


class MemoryPubSub:
    """Implements `channels.backend.PubSub`: one process's subscriptions to a `MemoryBroker`."""

    def __init__(self) -> None:
        self._listener: PubSubListener | None = None
        self._rooms: set[str] = set()
        self._connected = False

    def register(self, listener: PubSubListener) -> None:
        if self._listener is not None:
            raise RuntimeError("a pub/sub connection has one listener")
        self._listener = listener

    @property
    def connected(self) -> bool:
        return self._connected

    def _soon(self, callback: object, *args: object) -> None:
        asyncio.get_running_loop().call_soon(callback, *args)  # type: ignore[arg-type]

    async def start(self, wait_s: float = 5.0) -> None:
        self.restore()

    async def stop(self) -> None:
        self._connected = False
        self._rooms.clear()

    async def subscribe(self, room: str) -> None:
        if not self._connected or self._listener is None:
            return  # `restore` subscribes every wanted room
        self._rooms.add(room)
        self._soon(self._listener.on_subscribed, room)

    async def unsubscribe(self, room: str) -> None:
        if self._listener is not None and not self._listener.wants(room):
            self._rooms.discard(room)

    def break_connection(self) -> None:
        """The connection drops: nothing reaches this process until `restore`."""
        self._connected = False
        self._rooms.clear()
        if self._listener is not None:
            self._listener.on_lost()

    def restore(self) -> None:
        """Connected again: every wanted room is subscribed and confirmed."""
        self._connected = True
        if self._listener is None:
            return
        for room in self._listener.wanted_rooms():
            self._rooms.add(room)
            self._soon(self._listener.on_subscribed, room)

    def _deliver(self, envelope: Envelope) -> None:
        if self._connected and envelope.room in self._rooms and self._listener is not None:
            self._soon(self._listener.on_message, envelope)

    def _control(self, message: Disconnect) -> None:
        if self._connected and self._listener is not None:
            self._soon(self._listener.on_control, message)
