"""Joining, leaving and resynchronising rooms: where policies, the hub, the stream and presence meet.

A join is: the policy authorises; the hub subscribes this process to the room and starts
buffering the member's live events; presence counts the user in; the stream gives the room's
cursor (epoch, seq and, with `since`, the missed events); the policy builds a snapshot unless
the history covered `since`; then, without awaiting, `joined` is queued, the replay follows,
the buffered events newer than the cursor follow that, and the member goes live. Because the
subscription exists before the cursor is read, no event falls between replay and live
delivery, and the seq filter drops the ones both saw.

A re-join of a room the socket is live in while its send queue is backed up costs nothing: the
answer is `joined` at the member's own position (`recovered: true`, no snapshot), since every
later event is already on its way (a client that never reads cannot make the server build and
buffer one snapshot per join).

An unsolicited `joined` (no `ref`, `recovered: false`, fresh snapshot) takes the same path
when the hub reports that this process may have missed events of a room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import msgspec

from channels.backend import RoomUnreachable, Stream
from channels.hub import Hub
from channels.presence import PresenceTracker
from channels.protocol import CloseCode, ErrorCode, FrameError, Join, Joined, ServerFrame
from channels.seams import Grant, RoomPolicy, SessionView
from channels.subscription import Subscriber, Subscription, SubState

log = logging.getLogger("roomcast.rooms")

MAX_ROOM_NAME: Final = 200
USER_ROOM_PREFIX: Final = "user:"


def user_room(user_id: object) -> str:
    """`user:<id>`: the personal room every connection joins at `auth` (the core's one room convention)."""
    return f"{USER_ROOM_PREFIX}{user_id}"


RESYNC_CONCURRENCY: Final = 16
"""Snapshots built at once when many local members of one room need an unsolicited `joined`."""


class Member(SessionView, Subscriber, Protocol):
    """What the room layer needs of a connection (the gateway's session implements it)."""

    @property
    def subscriptions(self) -> dict[str, Subscription]: ...

    def encode(self, frame: ServerFrame) -> Any:
        """The frame ready for this connection's wire format; raises if it cannot be encoded."""
        ...

    def push(self, prepared: Any) -> None:
        """Queue an encoded frame without blocking."""
        ...

    @property
    def backlogged(self) -> bool:
        """Frames are waiting in the send queue (the socket is not keeping up right now)."""
        ...

    def close(self, code: int, reason: str | None = None) -> None: ...


class UserRoomPolicy:
    """`user:<id>`: that user alone. The gateway joins every connection to its own at `auth`.

    `snapshot` lets the application give the room a snapshot; by default `joined` has none.
    """

    def __init__(self, snapshot: Callable[[SessionView, str], Awaitable[Any]] | None = None) -> None:
        self._snapshot = snapshot

    def owns(self, room: str) -> bool:
        return room.startswith(USER_ROOM_PREFIX)

    async def authorize(self, session: SessionView, room: str) -> Grant:
        if room != user_room(session.identity.user_id):
            raise FrameError(ErrorCode.FORBIDDEN, "a user room is open to that user alone")
        return Grant(room=room, role="self")

    async def snapshot(self, session: SessionView, room: str) -> Any:
        return msgspec.UNSET if self._snapshot is None else await self._snapshot(session, room)

    def tracks_presence(self, room: str) -> bool:
        return False


class RoomHub:
    """The room side of the gateway: one per process, shared by every connection."""

    def __init__(
        self,
        hub: Hub,
        stream: Stream,
        policies: Sequence[RoomPolicy],
        presence: PresenceTracker | None = None,
        *,
        max_rooms_per_session: int = 100,
    ) -> None:
        self.hub = hub
        self.stream = stream
        self.policies = list(policies)
        self.presence = presence
        self.max_rooms_per_session = max_rooms_per_session

    def policy_for(self, room: str) -> RoomPolicy | None:
        for policy in self.policies:
            if policy.owns(room):
                return policy
        return None

    def _tracked(self, policy: RoomPolicy, room: str) -> bool:
        return self.presence is not None and policy.tracks_presence(room)

    def _policy(self, room: str, missing: str = ErrorCode.NOT_FOUND) -> RoomPolicy:
        policy = self.policy_for(room) if 0 < len(room) <= MAX_ROOM_NAME else None
        if policy is None:
            raise FrameError(missing, f"no such room: {room[:MAX_ROOM_NAME]!r}")
        return policy

    async def authorize(self, session: SessionView, room: str) -> Grant:
        """The one authorisation point for a `RoomFrame`: what `session` may do in `room`, as `join` sees it.

        A room name no policy owns is a malformed frame here (`bad_request`); `join` says `not_found`.
        """
        return await self._policy(room, ErrorCode.BAD_REQUEST).authorize(session, room)

    async def join(self, session: Member, frame: Join) -> None:
        """Answer a `join`: queue `joined` (with replay or snapshot), or raise `FrameError`."""
        room = frame.room
        policy = self._policy(room)
        rejoin = room in session.subscriptions
        if not rejoin and len(session.subscriptions) >= self.max_rooms_per_session:
            raise FrameError(ErrorCode.BAD_REQUEST, f"at most {self.max_rooms_per_session} rooms per connection")
        if frame.since is not None and frame.since < 0:
            raise FrameError(ErrorCode.BAD_REQUEST, "since must be a seq (>= 0)")
        await policy.authorize(session, room)
        current = session.subscriptions.get(room)
        if current is not None and current.state is SubState.LIVE and session.backlogged:
            joined = Joined(room=room, seq=current.seq, epoch=current.epoch, recovered=True, ref=frame.ref)
            session.push(session.encode(joined))
            return
        await self._enter(session, policy, room, frame.since, frame.epoch, frame.ref, welcome=None)

    async def join_own_room(self, session: Member, welcome: ServerFrame) -> None:
        """At `auth`: join `user:<id>` silently, queueing `welcome` before any of its events."""
        room = user_room(session.identity.user_id)
        policy = self.policy_for(room)
        if policy is None:
            raise RuntimeError("no policy owns user rooms: add channels.rooms.UserRoomPolicy")
        try:
            await self._enter(session, policy, room, None, None, None, welcome=welcome)
        except RoomUnreachable:
            # Only the user room's Redis (a room shard) is down: the socket opens all the same, and
            # the user room follows as an unsolicited `joined` once that Redis is back.
            session.push(session.encode(welcome))
            session.subscriptions[room] = self.hub.attach_behind(session, room)
            log.info("room.joined_later", extra={"session_id": session.session_id, "room": room})

    async def _enter(
        self,
        session: Member,
        policy: RoomPolicy,
        room: str,
        since: int | None,
        epoch: str | None,
        ref: str | None,
        *,
        welcome: ServerFrame | None,
    ) -> None:
        rejoin = room in session.subscriptions
        tracked = self._tracked(policy, room)
        try:
            sub, generation = await self.hub.attach(session, room)
        except BaseException:
            if rejoin:
                await self.leave(session, room)  # the old membership went with the failed attach
            raise
        session.subscriptions[room] = sub
        entered = rejoin and tracked
        try:
            if tracked and not entered:
                assert self.presence is not None
                await self.presence.enter(room, session.identity.user_id)
                entered = True
            cursor = await self.stream.cursor(room, since, epoch)
            if welcome is not None:
                first = session.encode(welcome)
            else:
                snapshot = msgspec.UNSET if cursor.recovered else await policy.snapshot(session, room)
                joined = Joined(
                    room=room,
                    seq=cursor.seq,
                    epoch=cursor.epoch,
                    recovered=cursor.recovered,
                    ref=ref,
                    snapshot=snapshot,
                )
                first = session.encode(joined)
        except BaseException:
            if entered:
                await self.leave(session, room)
            else:
                session.subscriptions.pop(room, None)
                self.hub.detach(sub)
            raise

        def prelude() -> None:
            session.push(first)
            for envelope in cursor.events:
                session.deliver(envelope)

        self.hub.activate(sub, generation, cursor.epoch, cursor.seq, prelude)
        log.debug(
            "room.joined",
            extra={"session_id": session.session_id, "room": room, "seq": cursor.seq, "replayed": len(cursor.events)},
        )

    async def leave(self, session: Member, room: str) -> None:
        sub = session.subscriptions.pop(room, None)
        if sub is None:
            return
        self.hub.detach(sub)
        policy = self.policy_for(room)
        if policy is not None and self._tracked(policy, room):
            assert self.presence is not None
            try:
                await self.presence.leave(room, session.identity.user_id)
            except Exception:
                log.warning("presence.leave_failed", extra={"session_id": session.session_id, "room": room})

    async def leave_all(self, session: Member) -> None:
        """Called once a connection is gone: detach from everything first (no await), then presence."""
        rooms = list(session.subscriptions)
        for room in rooms:
            sub = session.subscriptions.get(room)
            if sub is not None:
                self.hub.detach(sub)
        for room in rooms:
            await self.leave(session, room)

    async def resync(self, room: str, members: list[tuple[Subscription, int]]) -> None:
        """The hub's `ResyncHandler`: an unsolicited `joined` with a fresh snapshot for each member."""
        policy = self.policy_for(room)
        if policy is None:
            return
        cursor = await self.stream.cursor(room)
        limit = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def one(sub: Subscription, generation: int) -> None:
            session: Member = sub.subscriber  # type: ignore[assignment]  # only Members attach
            try:
                async with limit:
                    snapshot = await policy.snapshot(session, room)
                joined = Joined(room=room, seq=cursor.seq, epoch=cursor.epoch, recovered=False, snapshot=snapshot)
                prepared = session.encode(joined)
            except Exception:
                log.exception("room.resync_snapshot_failed", extra={"session_id": session.session_id, "room": room})
                session.close(CloseCode.INTERNAL_ERROR)
                return
            self.hub.activate(sub, generation, cursor.epoch, cursor.seq, lambda: session.push(prepared))

        await asyncio.gather(*(one(sub, generation) for sub, generation in members))
