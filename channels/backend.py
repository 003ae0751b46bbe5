"""The seams between the realtime core and what carries room events: the stream and the pub/sub.

Two small interfaces, each implemented for Redis (`channels.stream`, `channels.pubsub`) and in
memory (`channels.memory`, for the core's unit tests), as Litestar's channels backends are:

- a `Stream` keeps each room's seq, epoch and history, and publishes events and control
  messages (it is also the `Publisher` features see);
- a `PubSub` is one process's subscription to rooms: it subscribes and unsubscribes, and tells
  its one registered `PubSubListener` (the hub) about confirmations, messages, control
  messages and a lost connection, after which every room it had must be treated as behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from channels.envelope import Envelope
from channels.protocol import Event


class BrokerUnavailable(Exception):
    """The stream or pub/sub cannot be reached (or did not confirm in time); the caller answers `unavailable`."""


class RoomUnreachable(BrokerUnavailable):
    """Only this room's Redis (a room shard) cannot be reached; the rest of the backend works."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a room stands, read atomically: epoch, last seq, and the events after `since`."""

    room: str
    epoch: str
    seq: int
    recovered: bool
    """True when history covers everything after `since` (then `events` holds exactly that)."""
    events: list[Envelope]


class Disconnect(msgspec.Struct, kw_only=True, tag="disconnect", tag_field="op"):
    """The control message that closes sockets on every process (`Publisher.disconnect_user`).

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


def room_matches(room: str, room_prefix: str) -> bool:
    """`room` is `room_prefix` itself or one of its sub-rooms (`meeting:<id>` covers `meeting:<id>:moderation`)."""
    return room == room_prefix or room.startswith(room_prefix + ":")


class Stream(Protocol):
    """Seq, epoch and history per room; publishing. Works in any process."""

    async def publish(self, event: Event) -> int:
        """Assign the room's next seq atomically, keep the event in history, deliver it once; returns the seq."""
        ...

    async def publish_many(self, events: Sequence[Event]) -> list[int]:
        """`publish` each event, one room's in the order given, in as few round trips as the backend allows."""
        ...

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
        """Publish a `Disconnect` control message to every process."""
        ...

    async def cursor(self, room: str, since: int | None = None, epoch: str | None = None) -> Cursor:
        """The room's epoch and seq and, if history still covers `since`, the events after it.

        Raises `BrokerUnavailable` when the stream cannot be read.
        """
        ...


class PubSubListener(Protocol):
    """What a `PubSub` reports to (the hub registers itself, once)."""

    def wanted_rooms(self) -> Iterable[str]:
        """Every room this process has members in: subscribed again after a reconnect."""
        ...

    def wants(self, room: str) -> bool:
        """Still has members in `room` (an unsubscribe that raced a new join is not sent)."""
        ...

    def on_subscribed(self, room: str) -> None:
        """The latest subscription of `room` on the current connection is confirmed."""
        ...

    def on_message(self, envelope: Envelope) -> None: ...

    def on_control(self, message: Disconnect) -> None: ...

    def on_unreachable(self, rooms: Iterable[str]) -> None:
        """These rooms' connection cannot be made now (their shard is down): joins waiting for them give up."""
        ...

    def on_lost(self, rooms: Iterable[str] | None = None) -> None:
        """The connection broke: whatever was published until the next confirmation is lost for us.

        `rooms`: only those were carried by the connection (one shard's); None: every room.
        """
        ...


class PubSub(Protocol):
    """One process's subscriptions to rooms."""

    def register(self, listener: PubSubListener) -> None: ...

    @property
    def connected(self) -> bool: ...

    async def start(self, wait_s: float = 5.0) -> None: ...

    async def stop(self) -> None: ...

    async def subscribe(self, room: str) -> None:
        """Ask for `room`; `on_subscribed(room)` follows once confirmed (or after a reconnect)."""
        ...

    async def unsubscribe(self, room: str) -> None: ...
