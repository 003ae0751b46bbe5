"""Poll tests run against the realtime suite's pair of real server processes, in the Q&A tests' `Room`."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import API, auth_header
from tests.qa import conftest as qa
from tests.qa.conftest import Room

pair = qa.pair
room = qa.room


def polls_url(room: Room, suffix: str = "") -> str:
    return f"{room.pair.servers[0].url}{API}/meetings/{room.meeting_id}/polls{suffix}"


async def rest(room: Room, method: str, suffix: str = "", *, token: str | None = None, **kwargs: Any) -> httpx.Response:
    """A REST call on the meeting's polls, as the presenter unless another token is given."""
    async with httpx.AsyncClient() as http:
        return await http.request(
            method, polls_url(room, suffix), headers=auth_header(token or room.presenter.token), **kwargs
        )


async def create(room: Room, kind: str = "choice", title: str = "Lunch?", **fields: Any) -> dict[str, Any]:
    """A draft poll (a choice poll with two options unless told otherwise)."""
    if kind == "choice":
        fields.setdefault("options", ["Pizza", "Salad"])
    response = await rest(room, "POST", json={"kind": kind, "title": title, **fields})
    assert response.status_code == 201, response.text
    poll: dict[str, Any] = response.json()
    return poll


def action(room: str, poll_id: str, name: str) -> dict[str, Any]:
    return {"type": "poll_action", "room": room, "poll_id": poll_id, "action": name}


def respond(room: str, poll_id: str, **answer: Any) -> dict[str, Any]:
    return {"type": "respond", "room": room, "poll_id": poll_id, **answer}


async def opened(room: Room, kind: str = "choice", **fields: Any) -> dict[str, Any]:
    """A poll created and opened by the presenter (through a socket of its own)."""
    poll = await create(room, kind, **fields)
    moderator = await room.moderator()
    answer = await moderator.request(action(room.moderation, poll["id"], "open"))
    assert answer["type"] == "reply", answer
    opened_poll: dict[str, Any] = answer["data"]["poll"]
    return opened_poll
