"""The WebSocket protocol's envelope: frame base classes, the core frames, close and error codes.

Every frame is a msgspec Struct tagged by `type`. Clients send `ClientFrame`s; features add
their own subclasses (in their own modules) and the application composes the full union that
the gateway decodes in one call. The server sends `ServerFrame`s; room events are `Event`s,
whose `seq` the broker adds on the wire once Redis has assigned it.

New fields always get defaults and a field's type never changes, so older clients keep working.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 64 * 1024
SUBPROTOCOL_JSON: Final = "roomcast.v1.json"
SUBPROTOCOL_MSGPACK: Final = "roomcast.v1.msgpack"


class CloseCode:
    """Every close code the server uses: one closed, documented list."""

    UNAUTHENTICATED: Final = 4401
    """The `auth` token was invalid or expired."""
    REMOVED: Final = 4403
    """The user was removed from the meeting (or it was deleted)."""
    AUTH_TIMEOUT: Final = 4408
    """No `auth` frame within 10 s of connecting."""
    FLOODING: Final = 4429
    """Kept sending after `rate_limited`."""
    TOO_SLOW: Final = 4008
    """The send queue overflowed; reconnect and recover with `since`."""
    TOO_BIG: Final = 1009
    """A frame over 64 KiB."""
    RESTARTING: Final = 1012
    """The server is restarting; reconnect elsewhere and recover with `since`."""
    INTERNAL_ERROR: Final = 1011
    """The server could not rebuild a room's state for this connection; reconnect and join again."""
    TRY_AGAIN_LATER: Final = 1013
    """Redis was unreachable at `auth`, so the personal room could not be joined; reconnect later."""


class ErrorCode:
    """Every `code` an `error` frame may carry."""

    BAD_REQUEST: Final = "bad_request"
    UNAUTHORIZED: Final = "unauthorized"
    FORBIDDEN: Final = "forbidden"
    NOT_FOUND: Final = "not_found"
    CONFLICT: Final = "conflict"
    RATE_LIMITED: Final = "rate_limited"
    UNAVAILABLE: Final = "unavailable"
    INTERNAL: Final = "internal"


class FrameError(Exception):
    """Raised by a handler or policy to answer a frame with an `error` frame (the connection stays open)."""

    def __init__(self, code: str, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


# --- client frames -------------------------------------------------------------------------


class ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """Base of every frame a client sends. `ref`, when given, is echoed on the answer."""

    ref: str | None = None


class Auth(ClientFrame, tag="auth", kw_only=True):
    """Must be the first frame, within 10 s: any bearer credential (access, guest token or API key)."""

    token: str


class Join(ClientFrame, tag="join", kw_only=True):
    """Join a room; with `since` (and `epoch`), replay what was missed if history still holds it."""

    room: str
    since: int | None = None
    epoch: str | None = None


class Leave(ClientFrame, tag="leave", kw_only=True):
    """Stop receiving a room's events; answered with `reply` whether or not the room was joined."""

    room: str


class Ping(ClientFrame, tag="ping", kw_only=True):
    """For clients that cannot see WebSocket pings; answered with `pong`."""


CORE_CLIENT_FRAMES: Final = (Auth, Join, Leave, Ping)


# --- server frames -------------------------------------------------------------------------


class ServerFrame(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every frame the server sends."""


class WelcomeUser(msgspec.Struct, kw_only=True):
    id: str
    display_name: str
    guest: bool


class Welcome(ServerFrame, tag="welcome", kw_only=True):
    """Fields without defaults, so `omit_defaults` never drops them."""

    session_id: str
    user: WelcomeUser
    protocol: int
    heartbeat_s: int
    unread_notifications: int


class Joined(ServerFrame, tag="joined", kw_only=True):
    """The answer to `join`, and sent unsolicited (no `ref`) when the server may have missed events."""

    room: str
    seq: int
    epoch: str
    recovered: bool
    ref: str | None = None
    snapshot: Any = msgspec.UNSET


class Reply(ServerFrame, tag="reply", kw_only=True):
    data: Any
    ref: str | None = None


class Error(ServerFrame, tag="error", kw_only=True):
    code: str
    message: str
    ref: str | None = None
    retry_after_s: int | msgspec.UnsetType = msgspec.UNSET


class Pong(ServerFrame, tag="pong", kw_only=True):
    ref: str | None = None


class Event(ServerFrame, kw_only=True):
    """A room event. Subclasses carry the payload and an explicit tag (`tag="question.created"`).

    The wire form also has `seq` (an int, 1 more than the room's previous event), which the broker
    splices into the encoded bytes once Redis has assigned it: a handler never sets it. Clients
    that decode events with these types can treat `seq` as an extra field.
    """

    room: str


CORE_SERVER_FRAMES: Final = (Welcome, Joined, Reply, Error, Pong)
