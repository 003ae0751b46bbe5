"""The poll frames in `/asyncapi.json`: client frames the server receives, room events it sends with `seq`."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from tests.realtime.test_asyncapi import check_document, payload


async def test_asyncapi_lists_the_poll_frames_and_events(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    document = (await client.get("/asyncapi.json")).json()
    check_document(document)
    actions = {op["messages"][0]["$ref"].rsplit("/", 1)[-1]: op["action"] for op in document["operations"].values()}
    for frame in ("poll_action", "respond", "react"):
        assert actions[frame] == "receive", frame
    respond = payload(document, "respond")
    assert {"room", "poll_id", "option_ids", "value", "words"} <= set(respond["properties"])
    assert set(respond["required"]) == {"type", "room", "poll_id"}
    react = payload(document, "react")
    assert set(react["properties"]["reaction"]["enum"]) == {
        "like", "love", "laugh", "clap", "celebrate", "wow", "confused",
    }  # fmt: skip
    events = (
        "poll.opened",
        "poll.closed",
        "poll.updated",
        "poll.removed",
        "poll.results",
        "poll.response",
        "reactions",
    )
    for event in events:
        assert actions[event] == "send", event
        schema = payload(document, event)
        assert "seq" in schema["required"] and "room" in schema["required"], event
    assert "poll" in payload(document, "poll.opened")["required"]
