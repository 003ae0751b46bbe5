"""The WebSocket protocol as an AsyncAPI 3.0 document, generated from the msgspec frame types.

Generated rather than written so it cannot drift: every client frame of the application's
union and every server frame (room events included) appears with the JSON Schema msgspec
derives from its struct. The document describes the server: it *receives* client frames and
*sends* server frames on one channel, `/ws`. Room events get `seq` added to their schema here,
since the broker splices it into the encoded bytes rather than the struct carrying it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from channels.protocol import (
    PROTOCOL_VERSION,
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    ClientFrame,
    Event,
    ServerFrame,
)

ASYNCAPI_VERSION = "3.0.0"

SEQ_SCHEMA: dict[str, Any] = {
    "type": "integer",
    "minimum": 1,
    "description": "Grows by exactly 1 per event in the room across all server processes; a gap means a missed event.",
}


def _tag(cls: type[msgspec.Struct]) -> str:
    return str(cls.__struct_config__.tag)


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def asyncapi_document(
    client_frames: Sequence[type[ClientFrame]],
    server_frames: Sequence[type[ServerFrame]],
    *,
    title: str = "roomcast",
    version: str = "1",
    path: str = "/ws",
    public_url: str = "http://127.0.0.1:8000",
    heartbeat_s: int = 25,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict) for these frame types."""
    types: list[type[msgspec.Struct]] = [*client_frames, *server_frames]
    refs, schemas = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    messages: dict[str, Any] = {}
    channel_messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    client_tags = {_tag(t) for t in client_frames}
    server_tags = {_tag(t) for t in server_frames}
    for cls, ref in zip(types, refs, strict=True):
        receives = cls in client_frames
        tag = _tag(cls)
        key = tag if not (tag in client_tags and tag in server_tags) else f"{'client' if receives else 'server'}.{tag}"
        name = ref["$ref"].rsplit("/", 1)[-1]
        if issubclass(cls, Event):
            schema = schemas[name]
            schema.setdefault("properties", {})["seq"] = SEQ_SCHEMA
            required = schema.setdefault("required", [])
            if "seq" not in required:
                required.append("seq")
        messages[key] = {
            "name": tag,
            "title": cls.__name__,
            "summary": _summary(cls) or f"`{tag}` frame",
            "contentType": "application/json",
            "payload": ref,
            "tags": [
                {"name": "client frame" if receives else ("room event" if issubclass(cls, Event) else "server frame")}
            ],
        }
        channel_messages[key] = {"$ref": f"#/components/messages/{key}"}
        operations[f"{'receive' if receives else 'send'}.{key}"] = {
            "action": "receive" if receives else "send",
            "title": f"{'Client sends' if receives else 'Server sends'} `{tag}`",
            "channel": {"$ref": "#/channels/ws"},
            "messages": [{"$ref": f"#/channels/ws/messages/{key}"}],
        }
    url = urlsplit(public_url)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"{title} WebSocket protocol",
            "version": version,
            "description": (
                f"Protocol version {PROTOCOL_VERSION}. One object per frame, tagged by `type`: JSON text frames "
                f"(subprotocol `{SUBPROTOCOL_JSON}` or none) or MessagePack binary frames (`{SUBPROTOCOL_MSGPACK}`). "
                f"The first client frame is `auth`; the server pings every {heartbeat_s} s. See docs/protocol.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "default": {
                "host": url.netloc or "127.0.0.1:8000",
                "protocol": "wss" if url.scheme == "https" else "ws",
                "pathname": path,
                "description": "Any roomcast server process; all of them serve the same rooms.",
            }
        },
        "channels": {
            "ws": {
                "address": path,
                "title": "The one WebSocket of a client",
                "description": "Every frame in both directions travels here; rooms are named inside the frames.",
                "messages": channel_messages,
                "bindings": {"ws": {"bindingVersion": "0.1.0"}},
            }
        },
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
