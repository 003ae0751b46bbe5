"""Credentials end their sockets (docs/protocol.md): logout, refresh reuse, a deleted key, expiry: 4401.

The socket is opened on one server process and the credential revoked through the other, so
the disconnect crosses processes; a second login of the same user keeps its socket.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import asyncpg
import httpx
import msgspec

from server.auth.tokens import issue_access_token, issue_guest_token
from tests.helpers import API, auth_header, create_api_key, login, register_user
from tests.realtime.conftest import Pair
from tests.support import ServerProcess
from tests.wsclient import World, connect

BOUND_S = 3.0
"""A revocation reaches every process's sockets well within this (docs: under a second normally)."""


async def test_logout_closes_that_logins_sockets_only(pair: Pair) -> None:
    async with httpx.AsyncClient(base_url=pair.servers[0].url) as http:
        first = await register_user(http)
        second = await login(http, first["user"]["email"])
        async with (
            connect(pair.servers[1].ws_url, first["access_token"]) as ws,
            connect(pair.servers[0].ws_url, second["access_token"]) as other,
        ):
            started = time.monotonic()
            response = await http.post(f"{API}/auth/logout", json={"refresh_token": first["refresh_token"]})
            assert response.status_code == 204
            assert await ws.wait_closed(BOUND_S) == 4401
            assert time.monotonic() - started < BOUND_S
            pong = await other.request({"type": "ping"})
            assert pong["type"] == "pong" and other.close_code is None


async def test_refresh_token_reuse_closes_the_familys_sockets(pair: Pair) -> None:
    async with httpx.AsyncClient(base_url=pair.servers[0].url) as http:
        session = await register_user(http)
        response = await http.post(f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert response.status_code == 200
        renewed = response.json()
        async with connect(pair.servers[1].ws_url, renewed["access_token"]) as ws:
            replay = await http.post(f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]})
            assert replay.status_code == 401
            assert await ws.wait_closed(BOUND_S) == 4401


async def test_deleting_an_api_key_closes_its_sockets(pair: Pair) -> None:
    async with httpx.AsyncClient(base_url=pair.servers[0].url) as http:
        session = await register_user(http)
        kept, doomed = (
            await create_api_key(http, session["access_token"]),
            await create_api_key(http, session["access_token"]),
        )
        async with (
            connect(pair.servers[1].ws_url, doomed["key"]) as ws,
            connect(pair.servers[1].ws_url, kept["key"]) as other,
        ):
            response = await http.delete(f"{API}/api-keys/{doomed['id']}", headers=auth_header(session["access_token"]))
            assert response.status_code == 204
            assert await ws.wait_closed(BOUND_S) == 4401
            assert (await other.request({"type": "ping"}))["type"] == "pong"


async def test_access_and_guest_tokens_close_their_sockets_when_they_expire(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    meeting = await pair.world.meeting(ada)
    guest = await pair.world.guest(meeting, "Gus")
    short = msgspec.structs.replace(pair.settings, access_token_ttl_s=2, guest_token_ttl_s=2)
    access = issue_access_token(short, uuid.UUID(ada.id), uuid.uuid4())
    guest_token = issue_guest_token(short, uuid.UUID(guest.id), uuid.UUID(meeting))
    async with connect(pair.servers[0].ws_url, access) as ws, connect(pair.servers[1].ws_url, guest_token) as gws:
        started = time.monotonic()
        assert await ws.wait_closed(5) == 4401
        assert await gws.wait_closed(5) == 4401
        assert time.monotonic() - started < 4.0
        assert "expired" in ws.close_reason


async def test_a_revocation_the_process_never_heard_of_closes_within_the_check_interval(
    start_servers: Callable[..., list[ServerProcess]], world: World, database_url: str
) -> None:
    """The periodic check bounds the socket's life even without the disconnect message (revoked in SQL)."""
    [server] = start_servers(1, ROOMCAST_CREDENTIAL_CHECK_S="1")
    async with httpx.AsyncClient(base_url=server.url) as http:
        session = await register_user(http)
        key = await create_api_key(http, session["access_token"])
    async with connect(server.ws_url, session["access_token"]) as ws, connect(server.ws_url, key["key"]) as kws:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("UPDATE refresh_tokens SET revoked_at = now()")
            await connection.execute("DELETE FROM api_keys")
        finally:
            await connection.close()
        assert await ws.wait_closed(3) == 4401
        assert await kws.wait_closed(3) == 4401
