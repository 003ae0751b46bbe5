"""Local membership: who is subscribed to which room in this process, the seq filter, resync on gaps.

The hub is the pub/sub's one listener. For every room with local members it holds each
member's `Subscription` (`channels.subscription`: where the member is in the room's seq and,
while it joins or resyncs, the live events buffered for it). Fan-out (`on_message`) hands one `Envelope` to every live
member: the same bytes for all, one encode per event and wire format.

No silent gaps: an event whose epoch differs from the member's, or whose seq skips one, shows
that this process may have missed events; so does a lost pub/sub connection (every room). Such
members go back to buffering, and once the room's subscription is confirmed the registered
`ResyncHandler` (the room layer, `channels.rooms`) sends each one an unsolicited `joined` with a
fresh snapshot, after which the buffered events newer than it follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from channels.backend import BrokerUnavailable, Disconnect, PubSub, RoomUnreachable
from channels.envelope import Envelope
from channels.metrics import Metrics
from channels.subscription import Subscriber, Subscription, SubState, deliver_in_order
from channels.transport import WriteBatch

log = logging.getLogger("roomcast.hub")


class _Room:
    __slots__ = ("name", "needs_resync", "ready", "resync_again", "resync_task", "subs", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.subs: dict[str, Subscription] = {}
        self.ready = False
        """The subscription of this room is confirmed on the current pub/sub connection."""
        self.waiters: list[asyncio.Future[None]] = []
        self.needs_resync = False
        self.resync_task: asyncio.Task[None] | None = None
        self.resync_again = False


ResyncHandler = Callable[[str, list[tuple[Subscription, int]]], Awaitable[None]]
ControlHandler = Callable[[Disconnect], None]


class Hub:
    """Local subscriptions of one process, fed by its `PubSub` (whose one listener it is)."""

    def __init__(
        self,
        pubsub: PubSub,
        *,
        metrics: Metrics | None = None,
        max_buffer: int = 2000,
        subscribe_timeout_s: float = 5.0,
        batch: WriteBatch | None = None,
    ) -> None:
        self.pubsub = pubsub
        self._batch = batch if batch is not None else WriteBatch()
        """The sessions' `WriteBatch`: an event's fan-out latency is observed once its frames are written."""
        self.metrics = metrics if metrics is not None else Metrics()
        self.max_buffer = max_buffer
        self.subscribe_timeout_s = subscribe_timeout_s
        self._rooms: dict[str, _Room] = {}
        self._on_resync: ResyncHandler | None = None
        self._on_control: ControlHandler | None = None
        self._background: set[asyncio.Task[None]] = set()
        pubsub.register(self)

    def register(self, *, on_resync: ResyncHandler, on_control: ControlHandler) -> None:
        """The room layer's resync and the gateway's control handler: set once, at composition."""
        self._on_resync, self._on_control = on_resync, on_control

    # --- membership ---------------------------------------------------------------------------

    def _member(self, subscriber: Subscriber, room: str, state: SubState) -> tuple[_Room, Subscription, bool]:
        """The room's entry and `subscriber`'s subscription in it (created if new), restarted in `state`.

        Runs before any await, so a concurrent last-member-out cannot drop the room under the caller.
        Returns whether the room entry was created (its pub/sub subscription is then the caller's to open).
        """
        entry = self._rooms.get(room)
        created = entry is None
        if entry is None:
            entry = self._rooms[room] = _Room(room)
            self.metrics.rooms.set(len(self._rooms))
        sub = entry.subs.get(subscriber.session_id)
        if sub is None:
            sub = entry.subs[subscriber.session_id] = Subscription(subscriber, room)
        sub.state = state
        sub.buffer = []
        sub.generation += 1
        return entry, sub, created

    async def attach(self, subscriber: Subscriber, room: str) -> tuple[Subscription, int]:
        """Make `subscriber` a local member of `room`, buffering its events until `activate`.

        Returns once this process's subscription to the room is confirmed, so that a cursor read
        afterwards plus the buffered events cover everything (the join race). Re-attaching a
        member starts a fresh join. Returns the subscription and the generation to activate.
        """
        entry, sub, created = self._member(subscriber, room, SubState.JOINING)
        generation = sub.generation
        if created:
            await self.pubsub.subscribe(room)
        if not entry.ready:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, self.subscribe_timeout_s)
            except RoomUnreachable:
                self.detach(sub)
                raise
            except (TimeoutError, BrokerUnavailable) as err:
                self.detach(sub)
                raise BrokerUnavailable("the pub/sub connection is not available") from err
            except BaseException:
                self.detach(sub)
                raise
        return sub, generation

    def attach_behind(self, subscriber: Subscriber, room: str) -> Subscription:
        """Make `subscriber` a member of `room` whose Redis is unreachable now, without waiting for it.

        The member buffers as after a lost connection; once the room's subscription is confirmed
        (its Redis is back) it gets the unsolicited `joined` like every other member there.
        """
        entry, sub, created = self._member(subscriber, room, SubState.RESYNCING)
        entry.needs_resync = True
        if created:
            self._spawn(self.pubsub.subscribe(room))
        elif entry.ready:
            self._start_resync(entry)
        return sub

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
            if not deliver_in_order(sub, envelope):
                behind = True
                break
        if behind:
            entry = self._rooms.get(sub.room)
            if entry is not None:
                self._request_resync(entry)
        return True

    def detach(self, sub: Subscription) -> None:
        """Remove a member; the last one out unsubscribes this process from the room."""
        entry = self._rooms.get(sub.room)
        sub.state = SubState.DETACHED
        sub.buffer = []
        if entry is None or entry.subs.get(sub.subscriber.session_id) is not sub:
            return
        del entry.subs[sub.subscriber.session_id]
        if entry.subs:
            return
        del self._rooms[entry.name]
        self.metrics.rooms.set(len(self._rooms))
        for waiter in entry.waiters:
            if not waiter.done():
                waiter.set_exception(BrokerUnavailable("room left"))
        self._spawn(self.pubsub.unsubscribe(entry.name))

    def __len__(self) -> int:
        """Rooms with local members (tests check that every room is let go)."""
        return len(self._rooms)

    # --- PubSubListener ----------------------------------------------------------------------

    def wanted_rooms(self) -> Iterator[str]:
        return iter(list(self._rooms))

    def wants(self, room: str) -> bool:
        return room in self._rooms

    def on_subscribed(self, room: str) -> None:
        entry = self._rooms.get(room)
        if entry is None or entry.ready:
            return
        entry.ready = True
        waiters, entry.waiters = entry.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if entry.needs_resync:
            self._start_resync(entry)

    def on_lost(self, rooms: Iterable[str] | None = None) -> None:
        # Whatever is published from now until the subscriptions are back is lost for us: every
        # local member (of the connection's rooms) must be told (unsolicited `joined`) once they are.
        entries = list(self._rooms.values()) if rooms is None else [self._rooms[r] for r in rooms if r in self._rooms]
        for entry in entries:
            entry.ready = False
            self._mark_behind(entry)

    def on_unreachable(self, rooms: Iterable[str]) -> None:
        """These rooms' Redis cannot be reached now (a room shard is down): joins waiting for them give up."""
        for room in rooms:
            entry = self._rooms.get(room)
            if entry is None:
                continue
            waiters, entry.waiters = entry.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(RoomUnreachable(f"the Redis of {room} cannot be reached"))

    def on_control(self, message: Disconnect) -> None:
        if self._on_control is not None:
            self._on_control(message)

    def on_message(self, envelope: Envelope) -> None:
        entry = self._rooms.get(envelope.room)
        if entry is None:
            return
        behind = False
        for sub in tuple(entry.subs.values()):
            if sub.state is SubState.LIVE:
                if not deliver_in_order(sub, envelope):
                    behind = True
            elif len(sub.buffer) < self.max_buffer:
                sub.buffer.append(envelope)
            else:
                sub.subscriber.overflow()
        if entry.subs and envelope.published_at is not None:
            # once per event, once every local member has it written (after the batch's flush, held or not) or queued
            self._batch.after_write(self._observe_fanout, envelope.published_at)
        if behind:
            self._request_resync(entry)

    def _observe_fanout(self, published_at: float) -> None:
        self.metrics.fanout_latency.observe(max(0.0, time.time() - published_at))

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
            if members and self._on_resync is not None:
                self.metrics.resyncs.inc()
                log.info("hub.resync", extra={"room": entry.name, "members": len(members)})
                try:
                    await self._on_resync(entry.name, members)
                except Exception:
                    log.exception("hub.resync_failed", extra={"room": entry.name})
            if not entry.resync_again or self._rooms.get(entry.name) is not entry:
                return
            self._mark_behind(entry)
            if not entry.ready:
                return  # the subscription confirmation starts the next round

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
