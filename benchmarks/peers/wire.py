"""What the load generator says to each peer and how it reads the answers: one small module.

roomcast and the baseline speak roomcast's protocol (SPEC section 4) and need no wire here. For the
others a `Wire` turns the few things the load generator does (authenticate, join one room, ask)
into the peer's frames, and turns the peer's frames back into the worker's `Msg` (None for
frames it answers itself or ignores), so the worker's hot path stays the same for every target.

Socket.IO (python-socketio and Node.js) is Engine.IO v4 over a WebSocket
(`/socket.io/?EIO=4&transport=websocket`): the server opens with `0{...}` (sid, pingInterval);
the client connects to the main namespace with `40` and gets `40{"sid": ...}`; events are
`42["name", data]`, and `42<id>[...]` asks for an acknowledgement `43<id>[...]`; the server pings
with `2` and the client must answer `3` within pingTimeout or be dropped.

The Litestar peer has no protocol of its own beyond what its handler reads: JSON `join` (answered
with `joined`) and `ask`, and the events are the JSON the plugin publishes.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from benchmarks.worker import Msg, decode_msg, encode
from benchmarks.wsclient import Client

JOIN_REF = "join"
"""The key a peer's join answer resolves (the worker waits on it)."""

_event = msgspec.json.Decoder(tuple[str, Msg]).decode


class Wire(Protocol):
    path: str
    """The WebSocket path (and query) on each server."""

    def auth_frame(self) -> bytes | None:
        """The first frame (answered with a `welcome`), or None when the peer has no such step."""

    def join_frame(self, room: str) -> bytes:
        """Join `room`; answered with a `joined` whose ref is JOIN_REF."""

    def ask_frame(self, room: str, text: str) -> bytes:
        """Have the server broadcast a `question.created` carrying `text` to `room`."""

    def decode(self, client: Client, payload: bytes) -> Msg | None:
        """The worker's view of one frame from the server; None if there is nothing for it."""


class SocketIO:
    path = "/socket.io/?EIO=4&transport=websocket"

    def __init__(self, room: str) -> None:
        self.joined = Msg(type="joined", room=room, ref=JOIN_REF)

    def auth_frame(self) -> bytes | None:
        return b"40"

    def join_frame(self, room: str) -> bytes:
        return b"420" + encode(["join", room])

    def ask_frame(self, room: str, text: str) -> bytes:
        return b"42" + encode(["ask", {"room": room, "text": text}])

    def decode(self, client: Client, payload: bytes) -> Msg | None:
        if payload[:2] == b"42":
            return _event(payload[2:])[1]
        if payload == b"2":
            client.send(b"3")
            return None
        if payload[:2] == b"40":
            return Msg(type="welcome")
        if payload[:2] == b"43":
            return self.joined
        if payload[:2] == b"44":
            return Msg(type="error", code="connect_error", message=payload[2:].decode(errors="replace"))
        return None  # `0{...}` open, `41` disconnect, anything else


class Litestar:
    path = "/ws"

    def __init__(self, room: str) -> None:
        pass

    def auth_frame(self) -> bytes | None:
        return None

    def join_frame(self, room: str) -> bytes:
        return encode({"type": "join", "room": room, "ref": JOIN_REF})

    def ask_frame(self, room: str, text: str) -> bytes:
        return encode({"type": "ask", "room": room, "text": text})

    def decode(self, client: Client, payload: bytes) -> Msg | None:
        return decode_msg(payload)


WIRES: dict[str, type[SocketIO] | type[Litestar]] = {"socketio": SocketIO, "litestar": Litestar}


def wire_for(name: str | None, room: str) -> Wire | None:
    """The wire called `name`, for clients of `room`; None for roomcast's own protocol."""
    return None if name is None else WIRES[name](room)
