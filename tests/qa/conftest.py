"""Q&A tests run against the realtime suite's pair of real server processes (see tests/realtime/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import msgspec
import pytest

from tests.realtime import conftest as realtime
from tests.realtime.conftest import Pair
from tests.wsclient import Person, WsClient, connect

pair = realtime.pair  # the realtime suite's two server processes, shared per module


class Room:
    """One meeting with an owner, a presenter and people in it, all connected, on alternating servers."""

    def __init__(self, pair: Pair, meeting_id: str, owner: Person, presenter: Person, stack: AsyncExitStack) -> None:
        self.pair = pair
        self.meeting_id = meeting_id
        self.owner = owner
        self.presenter = presenter
        self.public = f"meeting:{meeting_id}"
        self.moderation = f"meeting:{meeting_id}:moderation"
        self._stack = stack
        self._count = 0

    async def settings(self, **values: Any) -> None:
        await self.sql(
            "UPDATE meetings SET settings = settings || $2::jsonb WHERE id = $1",
            self.meeting_id,
            msgspec.json.encode(values).decode(),
        )

    async def sql(self, query: str, *args: Any) -> Any:
        connection = await asyncpg.connect(self.pair.settings.database_url)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()

    async def client(
        self, person: Person, *, rooms: tuple[str, ...] | None = None, server: int | None = None, **kwargs: Any
    ) -> WsClient:
        """`person` connected (to server 0, 1, 0, ... unless told) and joined to `rooms` (default: the public room)."""
        index = self._count % 2 if server is None else server
        self._count += 1
        ws = await self._stack.enter_async_context(connect(self.pair.servers[index].ws_url, person.token, **kwargs))
        for room in (self.public,) if rooms is None else rooms:
            await ws.join(room)
        return ws

    async def participant(self, name: str = "Pia", **kwargs: Any) -> tuple[Person, WsClient]:
        person = await self.pair.world.participant(self.meeting_id, await self.pair.world.user(name))
        return person, await self.client(person, **kwargs)

    async def moderator(self, **kwargs: Any) -> WsClient:
        return await self.client(self.presenter, rooms=(self.public, self.moderation), **kwargs)


@pytest.fixture
async def room(pair: Pair) -> AsyncIterator[Room]:
    people = pair.world
    owner = await people.user("Olive")
    meeting_id = await people.meeting(owner, title="Town hall")
    presenter = await people.presenter(meeting_id, await people.user("Pat"))
    async with AsyncExitStack() as stack:
        yield Room(pair, meeting_id, owner, presenter, stack)


def ask(room: str, text: str, **fields: Any) -> dict[str, Any]:
    return {"type": "ask", "room": room, "text": text, **fields}


def on(kind: str, room: str, question_id: str, **fields: Any) -> dict[str, Any]:
    """A frame about one question: `on("vote", room, qid, up=True)`, `on("edit", room, qid, text=...)`."""
    return {"type": kind, "room": room, "question_id": question_id, **fields}


def moderate(room: str, question_id: str, action: str, **fields: Any) -> dict[str, Any]:
    return on("moderate", room, question_id, action=action, **fields)


def types(ws: WsClient, room: str) -> list[str]:
    return [event["type"] for event in ws.events(room)]


def question_events(ws: WsClient, room: str) -> list[dict[str, Any]]:
    return [event for event in ws.events(room) if event["type"].startswith("question.")]
