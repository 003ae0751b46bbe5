"""One room event as it travels: parsed once per process, its bytes shared by every local member."""

from __future__ import annotations

from typing import Any

import msgspec

from channels.wire import ws_frame


class Envelope:
    """One room event, parsed once per process and shared by every local member of its room.

    `message(binary)` is the ready-to-send ASGI message and `wire(binary)` the whole WebSocket
    frame: the JSON as published, or the same object as MessagePack, converted the first time a
    MessagePack member needs it. One encode per event and wire format, whatever the audience.
    """

    __slots__ = ("_binary", "_packed", "_text", "_wire", "data", "epoch", "kind", "published_at", "room", "seq")

    def __init__(self, room: str, epoch: str, seq: int, kind: str, data: bytes, published_at: float | None) -> None:
        self.room = room
        self.epoch = epoch
        self.seq = seq
        self.kind = kind
        self.data = data
        """The event's JSON, `seq` included."""
        self.published_at = published_at
        """`time.time()` when `publish` was called; None for replayed history."""
        self._text: dict[str, Any] | None = None
        self._binary: dict[str, Any] | None = None
        self._packed: bytes | None = None
        self._wire: list[bytes | None] = [None, None]

    def size(self, binary: bool) -> int:
        """What it weighs in a send queue (the JSON's size stands in for both formats)."""
        return len(self.data)

    def packed(self) -> bytes:
        """The event as MessagePack, converted once."""
        if self._packed is None:
            self._packed = msgspec.msgpack.encode(msgspec.json.decode(self.data))
        return self._packed

    def message(self, binary: bool) -> dict[str, Any]:
        """The ASGI `websocket.send` message for a member speaking `binary` (MessagePack) or JSON."""
        if binary:
            if self._binary is None:
                self._binary = {"type": "websocket.send", "bytes": self.packed()}
            return self._binary
        if self._text is None:
            self._text = {"type": "websocket.send", "text": self.data.decode()}
        return self._text

    def wire(self, binary: bool) -> bytes:
        """The whole WebSocket frame, the same bytes for every member speaking the same format."""
        frame = self._wire[binary]
        if frame is None:
            frame = self._wire[binary] = ws_frame(self.packed() if binary else self.data, binary)
        return frame
