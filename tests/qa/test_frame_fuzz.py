"""Property: whatever frame of any client type arrives on a live socket, the server answers it (a reply,
`joined`, `pong` or an `error` that is never `internal`), keeps the socket open, and an `error`
leaves every table as it was. Frames are drawn per type from its own fields (real ids, random ids,
wrong types, huge or hostile text, unknown fields). Bounded in CI by `ROOMCAST_FUZZ_FRAMES` examples
(default 60); `ROOMCAST_FUZZ_FRAMES=2000` makes a longer hunt.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from server.protocol import CLIENT_FRAMES
from tests.qa.conftest import Room, ask
from tests.wsclient import WsClient

TABLES = ("meetings", "meeting_members", "questions", "votes", "mutes", "notifications")
EXAMPLES = hypothesis_settings(
    max_examples=int(os.environ.get("ROOMCAST_FUZZ_FRAMES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
NASTY_TEXT = st.sampled_from(["", " ", "\x00", "\x07bell", "x" * 20_000, "é" * 300, "[" * 500, "🙂" * 10])


def _fields(frame_type: type[Any]) -> list[tuple[str, bool]]:
    info = msgspec.inspect.type_info(frame_type)
    assert isinstance(info, msgspec.inspect.StructType)
    return [(f.encode_name, f.required) for f in info.fields if f.encode_name != "ref"]


async def _digest(database_url: str) -> dict[str, str]:
    connection = await asyncpg.connect(database_url)
    try:
        result = {}
        for table in TABLES:
            result[table] = await connection.fetchval(
                f"SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
            )
        return result
    finally:
        await connection.close()


ROOMS = ["<public>", "<moderation>", "<user>", f"meeting:{uuid.uuid4()}", "meeting:x", ""]
IDS = ["<question>", str(uuid.uuid4()), "not-an-id", ""]


def _value(field: str) -> st.SearchStrategy[Any]:
    if field == "room":
        return st.sampled_from(ROOMS) | ANY_JSON
    if field.endswith("_id") or field in ("ids", "option_ids"):
        return st.sampled_from(IDS) | st.lists(st.sampled_from(IDS), max_size=3) | ANY_JSON
    return ANY_JSON | NASTY_TEXT


@st.composite
def frames(draw: st.DrawFn) -> dict[str, Any]:
    frame_type = draw(st.sampled_from(CLIENT_FRAMES))
    frame: dict[str, Any] = {"type": frame_type.__struct_config__.tag}
    for field, required in _fields(frame_type):
        if required or draw(st.booleans()):
            frame[field] = draw(_value(field))
    if draw(st.integers(0, 9)) == 0:
        frame[draw(st.text(min_size=1, max_size=6))] = draw(ANY_JSON)  # an unknown field
    return frame


class Target:
    """One meeting, its owner's socket in both rooms, and a real question (made once per test)."""

    def __init__(self, room: Room, ws: WsClient, question: str) -> None:
        self.room, self.ws = room, ws
        self.names = {
            "<public>": room.public,
            "<moderation>": room.moderation,
            "<user>": f"user:{room.owner.id}",
            "<question>": question,
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.names.get(value, value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value


@pytest.fixture
async def target(room: Room) -> Target:
    ws = await room.client(room.owner, rooms=(room.public, room.moderation))
    question = (await ws.request(ask(room.public, "A real question")))["data"]["question"]["id"]
    return Target(room, ws, question)


@EXAMPLES
@given(frame=frames())
async def test_any_client_frame_is_answered_without_internal_and_errors_change_nothing(
    target: Target, frame: dict[str, Any]
) -> None:
    ws, database_url = target.ws, target.room.pair.settings.database_url or ""
    frame = target.resolve(frame)
    before = await _digest(database_url)
    try:
        answer = await ws.request(dict(frame), timeout=10)
    except AssertionError:
        answer = {"type": "no answer"}
    assert ws.close_code is None, (frame, ws.close_code, ws.close_reason)
    assert answer["type"] in ("reply", "joined", "pong", "error"), (frame, answer)
    if answer["type"] == "error":
        assert answer["code"] != "internal", (frame, answer)
        assert await _digest(database_url) == before, frame
    await asyncio.sleep(0.06)  # under the 20 frames a second flood limit
