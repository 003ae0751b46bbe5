"""Frames to and from the wire: the encoders, the one union decoder, and the errors that answer bad input.

Every client frame is decoded in one call by one msgspec decoder over the application's whole
client-frame union (JSON for text frames and for binary frames of a JSON connection,
MessagePack for binary frames of a `roomcast.v1.msgpack` connection). Bad input is never an
exception out of here: `decode` returns the `error` frame that answers it, naming the problem
and echoing `ref` when it can be read. That includes input nested so deeply that a decoder
recurses too far (`RecursionError` is not a `DecodeError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import msgspec

from channels.protocol import ClientFrame, Error, ErrorCode, ServerFrame

JSON = msgspec.json.Encoder()
MSGPACK = msgspec.msgpack.Encoder()


def frame_type(cls: type[msgspec.Struct]) -> str:
    """The `type` tag of a frame class."""
    return str(cls.__struct_config__.tag)


def encode(frame: ServerFrame, binary: bool) -> bytes:
    """One frame in a connection's wire format (raises on an unencodable payload)."""
    return MSGPACK.encode(frame) if binary else JSON.encode(frame)


class _Probe(msgspec.Struct):
    """A lenient look at a frame that failed to decode, to name the problem and echo `ref`."""

    type: Any = None
    ref: Any = None


TOO_DEEP = "the frame is nested too deeply"


class Codec:
    """Decodes the client-frame union built once from `client_frames`."""

    def __init__(self, client_frames: Sequence[type[ClientFrame]]) -> None:
        union: Any = Union[tuple(client_frames)]  # noqa: UP007  # a runtime-built union
        self._json = msgspec.json.Decoder(union)
        self._msgpack = msgspec.msgpack.Decoder(union)
        self._json_probe = msgspec.json.Decoder(_Probe)
        self._msgpack_probe = msgspec.msgpack.Decoder(_Probe)
        self._tags = {frame_type(t) for t in client_frames}

    def decode(self, message: Any, binary: bool) -> tuple[ClientFrame | None, Error | None]:
        """One frame from an ASGI `websocket.receive`, or the `error` that answers it."""
        data: str | bytes | None = message.get("text")
        msgpack = False
        if data is None:
            data = message.get("bytes")
            msgpack = binary
        if data is None:
            return None, Error(code=ErrorCode.BAD_REQUEST, message="empty frame")
        try:
            if isinstance(data, str):
                frame: ClientFrame = self._json.decode(data)
            else:
                frame = self._msgpack.decode(data) if msgpack else self._json.decode(data)
        except msgspec.DecodeError as err:
            return None, self._explain(data, msgpack, err)
        except RecursionError:
            return None, Error(code=ErrorCode.BAD_REQUEST, message=TOO_DEEP)
        return frame, None

    def _explain(self, data: str | bytes, msgpack: bool, err: Exception) -> Error:
        wire = "MessagePack" if msgpack else "JSON"
        try:
            if isinstance(data, bytes) and msgpack:
                probe: _Probe = self._msgpack_probe.decode(data)
            else:
                probe = self._json_probe.decode(data)
        except msgspec.DecodeError:
            return Error(code=ErrorCode.BAD_REQUEST, message=f"a frame must be one {wire} object: {err}")
        except RecursionError:
            return Error(code=ErrorCode.BAD_REQUEST, message=TOO_DEEP)
        ref = probe.ref if isinstance(probe.ref, str) else None
        if not isinstance(probe.type, str):
            message = "a frame needs a string `type`"
        elif probe.type not in self._tags:
            message = f"unknown frame type {probe.type[:50]!r}"
        else:
            message = f"invalid {probe.type!r} frame: {err}"
        return Error(code=ErrorCode.BAD_REQUEST, message=message, ref=ref)
