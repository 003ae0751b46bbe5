"""A reconnect inside the history window asks PostgreSQL nothing (issue 8, scenario 5).

Proved by taking PostgreSQL away from the servers: the test database refuses new connections
and the servers' open ones are terminated, so any query a reconnect made would fail. What the
reconnect needs (who the token is, the unread count, the role in the meeting) comes from the
Redis cache that `server.cache` keeps; what invalidates it is checked too.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import asyncpg
import httpx

from channels.protocol import Event
from server.auth.tokens import issue_access_token
from tests.helpers import API, add_presenter, auth_header, register_user
from tests.support import ServerProcess, with_database
from tests.wsclient import World, connect, test_broker

StartServers = Callable[..., list[ServerProcess]]


class Note(Event, tag="test.note", kw_only=True):
    text: str


@contextlib.asynccontextmanager
async def postgres_unreachable(database_url: str) -> AsyncIterator[None]:
    """No connection to the test database can be made or kept until the block ends."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_a_known_client_reconnects_to_the_other_process_and_recovers_without_postgresql(
    start_servers: StartServers, world: World, database_url: str, redis_prefix: str, services: object
) -> None:
    first, second = start_servers(2)
    owner = await world.user("Olive")
    meeting = await world.meeting(owner)
    guest = await world.guest(meeting, "Gus")
    room = f"meeting:{meeting}"
    cursors = {}
    for person in (owner, guest):  # what a first connection reads from PostgreSQL is kept for reconnects
        async with connect(first.ws_url, person.token) as ws:
            cursors[person.id] = await ws.join(room)
    async with test_broker(services.redis_url, redis_prefix) as broker, postgres_unreachable(database_url):  # type: ignore[attr-defined]
        for n in range(5):
            await broker.publish(Note(room=room, text=f"missed {n}"))
        for person in (owner, guest):
            async with connect(second.ws_url, person.token) as ws:
                assert ws.welcome is not None and ws.welcome["user"]["id"] == person.id
                assert ws.welcome["unread_notifications"] == 0
                cursor = cursors[person.id]
                joined = await ws.join(room, since=cursor["seq"], epoch=cursor["epoch"])
                assert joined["recovered"] is True and "snapshot" not in joined, joined
                notes = await ws.wait_count(lambda f: f.get("type") == "test.note", 5)
                assert [n["text"] for n in notes] == [f"missed {n}" for n in range(5)]
        async with connect(second.ws_url) as fresh:
            # a login never seen before needs PostgreSQL: the client is told to try again, not refused
            await fresh.send(
                {"type": "auth", "token": issue_access_token(world.settings, uuid.UUID(owner.id), uuid.uuid4())}
            )
            error = await fresh.wait_for(lambda f: f.get("type") == "error")
            assert error["code"] == "unavailable", error
    async with connect(second.ws_url, owner.token) as back:  # and PostgreSQL is back: a fresh join works
        assert (await back.join(room))["recovered"] is False


async def test_logout_and_a_removed_role_take_effect_on_the_next_reconnect(
    start_servers: StartServers, world: World
) -> None:
    (server,) = start_servers(1)
    owner = await world.user("Olive")
    meeting = await world.meeting(owner)
    moderation = f"meeting:{meeting}:moderation"
    async with httpx.AsyncClient(base_url=server.url) as http:
        session = await register_user(http, display_name="Pat")
        await add_presenter(http, owner.token, meeting, session["user"]["email"])
        async with connect(server.ws_url, session["access_token"]) as pat:
            await pat.join(moderation)  # Pat's identity and role are now cached

        removed = await http.delete(
            f"{API}/meetings/{meeting}/presenters/{session['user']['id']}", headers=auth_header(owner.token)
        )
        assert removed.status_code == 204, removed.text
        async with connect(server.ws_url, session["access_token"]) as pat:
            refused = await pat.request({"type": "join", "room": moderation})
            assert refused["type"] == "error" and refused["code"] == "not_found", refused

        out = await http.post(f"{API}/auth/logout", json={"refresh_token": session["refresh_token"]})
        assert out.status_code == 204
        async with connect(server.ws_url) as pat:
            await pat.send({"type": "auth", "token": session["access_token"]})
            assert await pat.wait_closed() == 4401
