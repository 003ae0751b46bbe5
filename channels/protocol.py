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


class Close(int):
    """A close code as a value: the code itself (it compares equal to the int), the reason sent
    with it, and whether a client should reconnect (and recover with `since`) or stop.

    Like centrifuge's `Disconnect{Code, Reason}` values: call sites pass the value, never a bare
    number with a free-text reason. `server/web/static/roomcast.js` mirrors this list.
    """

    reason: str
    reconnect: bool

    def __new__(cls, code: int, reason: str, *, reconnect: bool) -> Close:
        value = super().__new__(cls, code)
        value.reason = reason
        value.reconnect = reconnect
        return value


class CloseCode:
    """Every close code the server uses: one closed, documented list (docs/protocol.md, "Close codes")."""

    UNAUTHENTICATED: Final = Close(4401, "invalid, expired or revoked credential", reconnect=True)
    """The `auth` token was invalid or expired, or the socket's credential expired or was revoked.
    Reconnect only with a fresh token."""
    REMOVED: Final = Close(4403, "removed from the meeting", reconnect=False)
    """The user was removed from the meeting (or it was deleted)."""
    AUTH_TIMEOUT: Final = Close(4408, "no auth frame in time", reconnect=True)
    """No `auth` frame within 10 s of connecting."""
    FLOODING: Final = Close(4429, "kept flooding after rate_limited", reconnect=True)
    """Kept sending after `rate_limited`; reconnect after a pause."""
    TOO_SLOW: Final = Close(4008, "too slow to keep up; reconnect and recover with since", reconnect=True)
    """The send queue overflowed; reconnect and recover with `since`."""
    TOO_BIG: Final = Close(1009, "frame over 64 KiB", reconnect=True)
    """A frame over 64 KiB."""
    INVALID_DATA: Final = Close(1007, "a text frame that is not UTF-8", reconnect=True)
    """A text frame whose bytes are not UTF-8 (RFC 6455 section 8.1)."""
    RESTARTING: Final = Close(1012, "server restarting; reconnect and recover with since", reconnect=True)
    """The server is restarting; reconnect elsewhere and recover with `since`."""
    INTERNAL_ERROR: Final = Close(1011, "could not rebuild the room's state; reconnect", reconnect=True)
    """The server could not rebuild a room's state for this connection; reconnect and join again."""
    TRY_AGAIN_LATER: Final = Close(1013, "realtime backend unavailable; reconnect later", reconnect=True)
    """Redis was unreachable at `auth`, so the personal room could not be joined; reconnect later."""


CLOSE_CODES: Final[tuple[Close, ...]] = tuple(value for value in vars(CloseCode).values() if isinstance(value, Close))
"""Every close value, for docs and for the test that `roomcast.js` mirrors them."""


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


class RoomFrame(ClientFrame, kw_only=True):
    """A client frame that acts in a room (`ask`, `vote`...): the base features derive such frames from.

    The gateway authorises it through the room's policy, the same answer (`Grant`) a `join` of
    that room gets, and hands the grant to the frame's handler. The socket need not have joined
    the room (a client may act without watching), but it gets exactly the rights a join would.
    """

    room: str


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
