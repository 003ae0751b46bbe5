"""One local member of one room: its state (joining, resyncing, live), its place in the room's seq, the seq filter.

A member joins or resyncs in a `generation`: the hub buffers the room's live events for it until
the room layer activates that generation (a newer join or resync supersedes an older one, whose
activation is then dropped). Once live, every event passes the seq filter (`deliver_in_order`):
the next seq of the member's epoch is delivered, an older one was already covered by its cursor,
anything else shows that this process may have missed events, and the hub resyncs the room.
"""

from __future__ import annotations

import enum
from typing import Protocol

from channels.envelope import Envelope


class Subscriber(Protocol):
    """What the hub needs of a connection: a non-blocking way to queue frames."""

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


def deliver_in_order(sub: Subscription, envelope: Envelope) -> bool:
    """Queue one event for a live member; False if it shows the member may have missed some."""
    if envelope.epoch == sub.epoch:
        if envelope.seq == sub.seq + 1:
            sub.seq = envelope.seq
            sub.subscriber.deliver(envelope)
            return True
        if envelope.seq <= sub.seq:
            return True  # already covered by the member's cursor (the join race)
    return False
