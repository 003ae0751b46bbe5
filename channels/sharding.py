"""Rooms over several Redis servers: a `Stream` and a `PubSub` that route each room to its shard.

`ShardedStream` sends every call about a room to the stream of the room's shard (events of
several rooms are grouped by shard: one Lua call per shard involved, the shards in parallel) and
control messages to the default Redis. `ShardedPubSub` holds one pub/sub
connection per shard this process has members on, opened with the first member and closed a
little after the last; the default Redis's connection carries control messages and the rooms
without a shard key. Each connection reports to the hub through a filter that knows which rooms
are its own, so a shard that breaks marks only its rooms as behind: their members get the
unsolicited `joined` once it is back, and every other room keeps delivering.

Whether each shard answers is `channels.shard_health`'s job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from channels.backend import BrokerUnavailable, Cursor, Disconnect, PubSub, PubSubListener, RoomUnreachable, Stream
from channels.envelope import Envelope
from channels.protocol import Event
from channels.shards import DEFAULT_SHARD, ShardMap

log = logging.getLogger("roomcast.shards")

IDLE_CLOSE_S: Final = 5.0
"""A shard's pub/sub connection is closed this long after its last local member left."""


class ShardUnavailable(BrokerUnavailable, RedisConnectionError):
    """The room's shard cannot be reached: frames answer `unavailable`.

    Also a redis `ConnectionError`, so code that already copes with Redis being down (presence,
    coalescers, jobs that retry) copes with one shard being down the same way. `rooms` are the
    rooms whose events were not published (`publish_many` publishes the others all the same).
    """

    def __init__(self, message: str, rooms: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.rooms = list(rooms)


class ShardedStream:
    """Implements `channels.backend.Stream`: each room's calls go to its shard's stream."""

    def __init__(self, streams: ShardMap[Stream], names: Sequence[str] = ()) -> None:
        self.streams = streams
        self.names = list(names)
        """The shards' URLs without passwords, in order (for errors and logs)."""

    def _name(self, room: str) -> str:
        index = self.streams.index(room)
        return "default" if index == DEFAULT_SHARD or index >= len(self.names) else self.names[index]

    async def publish(self, event: Event) -> int:
        try:
            return await self.streams.for_room(event.room).publish(event)
        except (RedisError, OSError) as err:
            raise self._unavailable(err, [event.room]) from err

    async def publish_many(self, events: Sequence[Event]) -> list[int]:
        """Publish `events` (one room's in order): one round trip per shard involved, shards in parallel.

        A shard that is down does not stop the others: their events are published, then
        `ShardUnavailable` names the rooms whose events were not.
        """
        by_shard: dict[int, list[int]] = {}
        for n, event in enumerate(events):
            by_shard.setdefault(self.streams.index(event.room), []).append(n)
        if len(by_shard) == 1:  # the usual case (a meeting's rooms; one Redis): no task per shard
            [index] = by_shard
            try:
                return await self.streams.at(index).publish_many(events)
            except (RedisError, OSError) as err:
                raise self._unavailable(err, [event.room for event in events]) from err
        seqs = [0] * len(events)

        async def one(index: int, positions: list[int]) -> None:
            done = await self.streams.at(index).publish_many([events[n] for n in positions])
            for n, seq in zip(positions, done, strict=True):
                seqs[n] = seq

        groups = list(by_shard.items())
        results = await asyncio.gather(*(one(index, positions) for index, positions in groups), return_exceptions=True)
        failed: list[str] = []
        error: BaseException | None = None
        for (_, positions), result in zip(groups, results, strict=True):
            if isinstance(result, (RedisError, OSError)):
                failed.extend(events[n].room for n in positions)
                error = error or result
            elif isinstance(result, BaseException):
                raise result
        if error is not None:
            raise self._unavailable(error, failed) from error
        return seqs

    def _unavailable(self, err: BaseException, rooms: list[str]) -> ShardUnavailable:
        shards = sorted({self._name(room) for room in rooms})
        return ShardUnavailable(f"redis {', '.join(shards)}: {type(err).__name__}", rooms)

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
        """Control messages travel on the default Redis, which every process listens to."""
        await self.streams.default.disconnect_user(
            user_id,
            room_prefix,
            code,
            credentials=credentials,
            except_credentials=except_credentials,
            reason=reason,
        )

    async def cursor(self, room: str, since: int | None = None, epoch: str | None = None) -> Cursor:
        index = self.streams.index(room)
        try:
            return await self.streams.at(index).cursor(room, since, epoch)
        except BrokerUnavailable as err:
            if index == DEFAULT_SHARD:
                raise
            raise RoomUnreachable(f"redis {self._name(room)}: {err}") from err


class _ShardListener:
    """What one connection reports, narrowed to its own rooms, passed on to the hub.

    A room shard's connection that breaks, or cannot be made again, tells the hub only about that
    shard's rooms. When it fails twice in a row without confirming a subscription in between,
    the shard is down: joins waiting for its rooms give up at once (`unavailable`) instead of
    waiting out the subscription timeout.
    """

    def __init__(self, owner: ShardedPubSub, index: int) -> None:
        self.owner = owner
        self.index = index
        self.healthy = False
        """A subscription was confirmed since the connection last broke."""

    @property
    def listener(self) -> PubSubListener:
        assert self.owner.listener is not None
        return self.owner.listener

    def wanted_rooms(self) -> list[str]:
        index, shards = self.index, self.owner.pubsubs
        return [room for room in self.listener.wanted_rooms() if shards.index(room) == index]

    def wants(self, room: str) -> bool:
        return self.listener.wants(room)

    def on_subscribed(self, room: str) -> None:
        self.healthy = True
        self.listener.on_subscribed(room)

    def on_message(self, envelope: Envelope) -> None:
        self.listener.on_message(envelope)

    def on_control(self, message: Disconnect) -> None:
        if self.index == DEFAULT_SHARD:
            self.listener.on_control(message)

    def on_unreachable(self, rooms: Iterable[str]) -> None:
        self.listener.on_unreachable(rooms)

    def on_lost(self, rooms: Iterable[str] | None = None) -> None:
        mine = self.wanted_rooms()
        self.listener.on_lost(mine)
        if not self.healthy and self.index != DEFAULT_SHARD:
            self.listener.on_unreachable(mine)
        self.healthy = False


class ShardedPubSub:
    """Implements `channels.backend.PubSub`: one connection per shard with local members, plus the default's."""

    def __init__(self, pubsubs: ShardMap[PubSub], *, idle_close_s: float = IDLE_CLOSE_S) -> None:
        self.pubsubs = pubsubs
        self.idle_close_s = idle_close_s
        self.listener: PubSubListener | None = None
        self._running: set[int] = set()
        self._locks: dict[int, asyncio.Lock] = {}
        self._closers: dict[int, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[None]] = set()

    def register(self, listener: PubSubListener) -> None:
        if self.listener is not None:
            raise RuntimeError("a pub/sub connection has one listener")
        self.listener = listener
        self.pubsubs.default.register(_ShardListener(self, DEFAULT_SHARD))
        for index, pubsub in enumerate(self.pubsubs.shards):
            pubsub.register(_ShardListener(self, index))

    @property
    def connected(self) -> bool:
        """The default Redis's connection (control messages) is up."""
        return self.pubsubs.default.connected

    def open_shards(self) -> list[int]:
        """The shards this process holds a pub/sub connection to (tests and metrics)."""
        return sorted(self._running)

    async def start(self, wait_s: float = 5.0) -> None:
        await self.pubsubs.default.start(wait_s)

    async def stop(self) -> None:
        for handle in self._closers.values():
            handle.cancel()
        self._closers.clear()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(
            self.pubsubs.default.stop(),
            *(self.pubsubs.shards[index].stop() for index in self._running),
            return_exceptions=True,
        )
        self._running.clear()

    def _lock(self, index: int) -> asyncio.Lock:
        lock = self._locks.get(index)
        if lock is None:
            lock = self._locks[index] = asyncio.Lock()
        return lock

    async def subscribe(self, room: str) -> None:
        index = self.pubsubs.index(room)
        if index == DEFAULT_SHARD:
            await self.pubsubs.default.subscribe(room)
            return
        closer = self._closers.pop(index, None)
        if closer is not None:
            closer.cancel()
        async with self._lock(index):
            pubsub = self.pubsubs.shards[index]
            if index not in self._running:
                # Its first connection subscribes every wanted room of the shard, this one included.
                self._running.add(index)
                await pubsub.start(0)
                log.info("shards.pubsub_opened", extra={"shard": index})
                return
        await pubsub.subscribe(room)

    async def unsubscribe(self, room: str) -> None:
        index = self.pubsubs.index(room)
        pubsub = self.pubsubs.at(index)
        await pubsub.unsubscribe(room)
        if index != DEFAULT_SHARD and index in self._running and index not in self._closers:
            self._closers[index] = asyncio.get_running_loop().call_later(self.idle_close_s, self._close_if_idle, index)

    def _close_if_idle(self, index: int) -> None:
        self._closers.pop(index, None)
        task = asyncio.ensure_future(self._close(index))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close(self, index: int) -> None:
        async with self._lock(index):
            if index not in self._running or _ShardListener(self, index).wanted_rooms():
                return
            self._running.discard(index)
            await self.pubsubs.shards[index].stop()
            log.info("shards.pubsub_closed", extra={"shard": index})


__all__ = ["ShardUnavailable", "ShardedPubSub", "ShardedStream"]
