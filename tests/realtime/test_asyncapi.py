"""`/asyncapi.json`: a valid AsyncAPI 3.0 document listing every frame, checked without a network schema.

The checks follow the 3.0 JSON Schema's required fields (root `asyncapi` + `info{title,
version}`; server `host` + `protocol`; operation `action` in send/receive + `channel`), its key
patterns, and that every `$ref` resolves inside the document.
"""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import AsyncTestClient

from channels.asyncapi import asyncapi_document
from channels.protocol import CORE_CLIENT_FRAMES, CORE_SERVER_FRAMES, ClientFrame, Event

KEY = re.compile(r"^[\w\d.\-_]+$")


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, f"unresolvable {ref}"
        node = node[part]
    return node


def check_refs(document: dict[str, Any], node: Any) -> int:
    count = 0
    if isinstance(node, dict):
        if "$ref" in node:
            resolve(document, node["$ref"])
            count += 1
        for value in node.values():
            count += check_refs(document, value)
    elif isinstance(node, list):
        for value in node:
            count += check_refs(document, value)
    return count


def check_document(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    for server in document["servers"].values():
        assert server["host"] and server["protocol"] in ("ws", "wss")
    for key, channel in document["channels"].items():
        assert KEY.match(key) and channel["address"] == "/ws"
        for message_key in channel["messages"]:
            assert KEY.match(message_key)
    for key, operation in document["operations"].items():
        assert KEY.match(key)
        assert operation["action"] in ("send", "receive")
        assert resolve(document, operation["channel"]["$ref"]) is document["channels"]["ws"]
        for message in operation["messages"]:
            assert message["$ref"].startswith("#/channels/ws/messages/")
    for key, message in document["components"]["messages"].items():
        assert KEY.match(key) and resolve(document, message["payload"]["$ref"])["type"] == "object"
    assert check_refs(document, document) > 0


def payload(document: dict[str, Any], message_name: str) -> dict[str, Any]:
    for message in document["components"]["messages"].values():
        if message["name"] == message_name:
            schema: dict[str, Any] = resolve(document, message["payload"]["$ref"])
            return schema
    raise AssertionError(f"no message {message_name}")


async def test_the_served_document_is_valid_and_lists_every_frame(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    document = response.json()
    check_document(document)
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert {"auth", "join", "leave", "ping"} <= names
    assert {"welcome", "joined", "reply", "error", "pong", "presence", "meeting.updated"} <= names
    actions = {op["messages"][0]["$ref"].rsplit("/", 1)[-1]: op["action"] for op in document["operations"].values()}
    assert actions["auth"] == "receive" and actions["welcome"] == "send"
    for event in ("presence", "meeting.updated"):
        schema = payload(document, event)
        assert schema["properties"]["seq"]["type"] == "integer" and "seq" in schema["required"]
        assert "room" in schema["required"]
    assert "seq" not in payload(document, "welcome")["properties"]
    welcome = payload(document, "welcome")
    assert set(welcome["required"]) == {"type", "session_id", "user", "protocol", "heartbeat_s", "unread_notifications"}
    join = payload(document, "join")
    assert set(join["properties"]) == {"type", "ref", "room", "since", "epoch"} and join["required"] == ["type", "room"]


def test_features_frames_appear_with_their_direction() -> None:
    class Wave(ClientFrame, tag="wave", kw_only=True):
        room: str

    class Waved(Event, tag="waved", kw_only=True):
        by: str

    document = asyncapi_document((*CORE_CLIENT_FRAMES, Wave), (*CORE_SERVER_FRAMES, Waved))
    check_document(document)
    assert document["operations"]["receive.wave"]["action"] == "receive"
    assert document["operations"]["send.waved"]["action"] == "send"
    assert "seq" in payload(document, "waved")["required"]
