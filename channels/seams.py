"""The two seams through which features plug into the realtime core, plus the authenticator.

- A `FrameRouter` per feature maps client frame types to handlers:
  `router.on(Ask)(ask)` with `async def ask(session, frame, grant) -> data` — the gateway wraps
  the returned data in a `reply` with the frame's `ref`; a handler raises `FrameError` to
  answer with `error`. Handlers of `RoomFrame`s take the `Grant` as a third argument; others
  take `(session, frame)`.
- A `RoomPolicy` per room family (Phoenix's `join/3`): which room names it owns, who may join
  (`authorize`, returning the `Grant`), the snapshot a joiner gets, and whether the room tracks
  presence. `authorize` is the one authorisation point: `join` asks it, and so does every
  `RoomFrame` naming the room (joined or not), whose handler then acts on the grant and never
  looks roles up again.
- An `Authenticator` turns the `auth` frame's token into an `Identity`.

Handlers and policies receive untrusted input: every frame field came from the network.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from channels.protocol import ClientFrame, Event, RoomFrame


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a connection belongs to, as the authenticator saw it at `auth` time."""

    user_id: str
    display_name: str
    guest: bool
    unread_notifications: int = 0
    context: Any = None
    """Whatever the application wants its handlers to have (e.g. its own principal object)."""
    credential: str = ""
    """The credential the socket was opened with, named by the application (a login, an API key, a
    guest token). `Publisher.disconnect_user(..., credentials=...)` closes exactly the sockets of
    a credential that was revoked; empty: only user-wide disconnects reach the socket."""
    expires_at: float | None = None
    """Unix time at which the credential stops being valid: the gateway closes the socket then
    (4401, so the client refreshes and reconnects). None: it does not expire by itself."""


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """What a session may do in one room: the policy's answer to `authorize` (at `join` and per frame)."""

    room: str
    role: str = ""
    """The policy's name for the caller's standing there (e.g. `owner`, `participant`)."""
    context: Any = None
    """Whatever else the policy's handlers need (e.g. the parsed meeting id)."""


class SessionView(Protocol):
    """What handlers and policies may see of a connection."""

    @property
    def session_id(self) -> str: ...

    @property
    def identity(self) -> Identity: ...

    @property
    def rooms(self) -> frozenset[str]: ...


Handler = Callable[..., Awaitable[Any]]
"""`(session, frame)`, or `(session, frame, grant)` for a `RoomFrame`."""

H = TypeVar("H", bound=Handler)


class FrameRouter:
    """Maps client frame types to one handler each; a feature module owns one router.

    Register named functions (or methods): `router.on(Ask)(ask)`, or `@router.on(Ask)` above one.
    """

    def __init__(self) -> None:
        self.handlers: dict[type[ClientFrame], Handler] = {}

    def on(self, frame_type: type[ClientFrame]) -> Callable[[H], H]:
        def register(handler: H) -> H:
            if frame_type in self.handlers:
                raise ValueError(f"{frame_type.__name__} already has a handler")
            wanted = 3 if issubclass(frame_type, RoomFrame) else 2
            if len(inspect.signature(handler).parameters) != wanted:
                shape = "(session, frame, grant)" if wanted == 3 else "(session, frame)"
                raise TypeError(f"the handler of {frame_type.__name__} must take {shape}")
            self.handlers[frame_type] = handler
            return handler

        return register


def merge_routers(
    routers: Iterable[FrameRouter], frame_types: Iterable[type[ClientFrame]]
) -> dict[type[ClientFrame], Handler]:
    """One dispatch table for the whole union; fails fast if a frame type has no handler or two."""
    table: dict[type[ClientFrame], Handler] = {}
    for router in routers:
        for frame_type, handler in router.handlers.items():
            if frame_type in table:
                raise ValueError(f"{frame_type.__name__} has handlers in two routers")
            table[frame_type] = handler
    missing = [t.__name__ for t in frame_types if t not in table]
    if missing:
        raise ValueError(f"client frames without a handler: {', '.join(missing)}")
    return table


class RoomPolicy(Protocol):
    """Owns a family of rooms (`meeting:<id>`, `user:<id>`, ...)."""

    def owns(self, room: str) -> bool:
        """True if `room` belongs to this policy's family (checked in registration order)."""
        ...

    async def authorize(self, session: SessionView, room: str) -> Grant:
        """What the session may do in `room`; raise `FrameError` (`forbidden`, `not_found`) if nothing.

        Asked at every `join` and for every `RoomFrame` naming the room, so it must be cheap on
        a repeat (a cache the application invalidates when roles change) and fresh within the
        time the application promises for a removal to take effect.
        """
        ...

    async def snapshot(self, session: SessionView, room: str) -> Any:
        """The current state a joiner gets with `recovered: false` (msgspec-encodable), or UNSET for none.

        Read it from the source of truth after the join's cursor: events published after that
        are delivered on top of it, so the state must already contain everything up to it.
        """
        ...

    def tracks_presence(self, room: str) -> bool:
        """True if `room` counts its distinct users (`presence {count}` events, the count for snapshots)."""
        ...


class Publisher(Protocol):
    """All that features see of the realtime core's fan-out: publish an event, disconnect a user.

    `channels.stream.RedisStream` implements it (and `channels.memory.MemoryBroker` in tests).
    """

    async def publish(self, event: Event) -> int:
        """Send `event` to everyone in `event.room` on every server process; returns its seq.

        Call it after the change the event describes is committed. Raises if the backend is down.
        """
        ...

    async def publish_many(self, events: Sequence[Event]) -> list[int]:
        """`publish` each of `events` (one room's in the order given) in as few round trips as the
        backend allows: one per Redis involved. Returns their seqs."""
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
        """Close the matching sockets of `user_id` (`*`: everyone) on every process with `code`.

        `room_prefix`: only sockets that joined a room in it (`meeting:<id>` covers its
        sub-rooms); `credentials`: only sockets opened with one of them; `except_credentials`:
        never those.
        """
        ...


class Authenticator(Protocol):
    async def __call__(self, token: str) -> Identity | None:
        """The identity a token stands for, or None (the gateway then closes with 4401)."""
        ...


class CredentialCheck(Protocol):
    async def __call__(self, identities: Sequence[Identity]) -> Collection[str]:
        """The `credential`s among `identities` that are no longer valid (revoked, deleted).

        The gateway asks it periodically about every open socket, so that a revocation whose
        disconnect message this process missed (its pub/sub connection was down) still closes
        the socket within a bounded time.
        """
        ...
