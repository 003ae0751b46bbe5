"""PostgreSQL unavailable for a few seconds (a TCP proxy in front of it is dropped, then restored).

REST answers 503 with the envelope, frames answer `unavailable`, sockets stay open, nothing is
half-written, and everything works again once PostgreSQL is back. The shared PostgreSQL itself
is never touched: only this test's proxy goes away.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from server.settings import Settings
from tests.helpers import API, auth_header
from tests.support import ServerProcess, TcpProxy
from tests.wsclient import World, connect

OUTAGE_S = 3.0


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    credentials = netloc[0] + "@" if len(netloc) == 2 else ""
    return urlunsplit((parts.scheme, f"{credentials}127.0.0.1:{port}", parts.path, parts.query, parts.fragment))


async def test_postgres_outage_costs_503_and_unavailable_then_recovers(
    start_servers: Callable[..., list[ServerProcess]], database_url: str, settings: Settings
) -> None:
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    try:
        (server,) = start_servers(1, DATABASE_URL=_via(database_url, proxy.port))
        world = World(database_url, settings)
        owner = await world.user("Olive")
        meeting_id = await world.meeting(owner, title="Outage")
        alice = await world.participant(meeting_id, await world.user("Alice"))
        room = f"meeting:{meeting_id}"
        async with (
            connect(server.ws_url, alice.token) as ws,
            httpx.AsyncClient(base_url=server.url, timeout=15) as http,
        ):
            await ws.join(room)
            first = await ws.request({"type": "ask", "room": room, "text": "Before the outage", "client_id": "q1"})
            assert first["type"] == "reply", first

            proxy.drop()
            outage_started = time.monotonic()
            refusals: list[str] = []
            while time.monotonic() - outage_started < OUTAGE_S:
                created = await http.post(f"{API}/meetings", json={"title": "During"}, headers=auth_header(owner.token))
                assert created.status_code == 503, created.text
                assert created.json()["error"]["code"] == "unavailable"
                assert int(created.headers["retry-after"]) >= 1
                ready = await http.get("/health/ready")
                assert ready.status_code == 503
                for frame in (
                    {"type": "ask", "room": room, "text": "During the outage", "client_id": "q2"},
                    {"type": "vote", "room": room, "question_id": first["data"]["question"]["id"], "up": True},
                ):
                    answer = await ws.request(dict(frame), timeout=15)
                    assert answer["type"] == "error", answer
                    refusals.append(answer["code"])
                await asyncio.sleep(0.3)
            assert set(refusals) == {"unavailable"}, refusals
            assert ws.close_code is None  # the socket stayed open

            proxy.restore()
            restored = time.monotonic()
            while True:
                answer = await ws.request({"type": "ask", "room": room, "text": "During the outage", "client_id": "q2"})
                if answer["type"] == "reply":
                    break
                assert answer["code"] == "unavailable", answer
                assert time.monotonic() - restored < 15, "no recovery within 15 s"
                await asyncio.sleep(0.2)
            recovery_s = time.monotonic() - restored
            created = await http.post(f"{API}/meetings", json={"title": "After"}, headers=auth_header(owner.token))
            assert created.status_code == 201, created.text
            print(f"postgres outage {OUTAGE_S:.0f} s: recovered {recovery_s:.2f} s after it came back")

        connection = await asyncpg.connect(database_url)
        try:
            questions = await connection.fetch(
                "SELECT text, votes FROM questions WHERE meeting = $1", uuid.UUID(meeting_id)
            )
            meetings = await connection.fetch("SELECT title FROM meetings WHERE owner = $1", uuid.UUID(owner.id))
        finally:
            await connection.close()
        assert sorted(q["text"] for q in questions) == ["Before the outage", "During the outage"]  # once each
        assert [q["votes"] for q in questions if q["text"] == "Before the outage"] == [0]  # the refused vote
        assert sorted(m["title"] for m in meetings) == ["After", "Outage"]
    finally:
        proxy.stop()
