"""Issue 16 defect 1 (PITFALLS 17): unread exports (questions and poll answers) hold no pooled connection;
question exports per user are bounded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest

from server.settings import Settings
from tests.support import ServerProcess, eventually
from tests.wsclient import Person, World

QUESTIONS = 12_000
"""About 5 MB of CSV: more than the kernel buffers a reader that never reads can hide."""


async def _meeting_with_questions(world: World, count: int) -> tuple[Person, str]:
    owner = await world.user("Olive")
    meeting_id = await world.meeting(owner, title="Big export")
    connection = await asyncpg.connect(world.database_url)
    try:
        await connection.execute(
            """INSERT INTO questions (id, meeting, author, text, status)
               SELECT gen_random_uuid(), $1, $2, 'Question ' || n || ' ' || repeat('lorem ipsum ', 24), 'live'
               FROM generate_series(1, $3) AS n""",
            uuid.UUID(meeting_id),
            uuid.UUID(owner.id),
            count,
        )
    finally:
        await connection.close()
    return owner, meeting_id


async def _meeting_with_poll_answers(world: World, count: int) -> tuple[Person, str]:
    """A word-cloud poll with `count` answers (their respondents' accounts deleted, so no users are needed)."""
    owner = await world.user("Olive")
    meeting_id = await world.meeting(owner, title="Big poll export")
    connection = await asyncpg.connect(world.database_url)
    try:
        poll_id = await connection.fetchval(
            "INSERT INTO polls (id, meeting, kind, title, status, opened_at, closed_at)"
            " VALUES (gen_random_uuid(), $1, 'word_cloud', 'Words', 'closed', now(), now()) RETURNING id",
            uuid.UUID(meeting_id),
        )
        await connection.execute(
            """INSERT INTO poll_responses (poll, words)
               SELECT $1, ARRAY['answer ' || n, repeat('lorem ipsum ', 24)] FROM generate_series(1, $2) AS n""",
            poll_id,
            count,
        )
    finally:
        await connection.close()
    return owner, meeting_id


EXPORTS = {"questions.csv": _meeting_with_questions, "polls.csv": _meeting_with_poll_answers}


@contextlib.asynccontextmanager
async def unread_export(
    server: ServerProcess, token: str, meeting_id: str, export: str = "questions.csv"
) -> AsyncIterator[socket.socket]:
    """A GET of the CSV on a socket with a tiny receive buffer that is never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    request = (
        f"GET /api/v1/meetings/{meeting_id}/{export} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    try:
        yield sock
    finally:
        sock.close()


async def _timed_get(http: httpx.AsyncClient, url: str, token: str | None = None) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    response = await http.get(url, headers=headers, timeout=10)
    return response.status_code, time.monotonic() - started


@pytest.mark.parametrize("export", sorted(EXPORTS))
async def test_a_dozen_unread_exports_leave_the_process_answering(
    export: str, start_servers: Callable[..., list[ServerProcess]], database_url: str, settings: Settings
) -> None:
    world = World(database_url, settings)
    (server,) = start_servers(1, ROOMCAST_EXPORTS_PER_USER="20")
    owner, meeting_id = await EXPORTS[export](world, QUESTIONS)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(12):
            await stack.enter_async_context(unread_export(server, owner.token, meeting_id, export))
        async with httpx.AsyncClient(base_url=server.url) as http:

            async def answers_within_a_second() -> bool:
                # the exports first fill their sockets' buffers (CPU work for a loaded machine); once they
                # are stalled, the process must answer at once. Before the fix it never did: the 12
                # exports held all 10 pooled connections, and /health/ready was 503 after 2 s.
                ready = await _timed_get(http, "/health/ready")
                meeting = await _timed_get(http, f"/api/v1/meetings/{meeting_id}", owner.token)
                results.append((ready, meeting))
                return ready[0] == 200 and ready[1] < 1 and meeting[0] == 200 and meeting[1] < 1

            results: list[tuple[tuple[int, float], tuple[int, float]]] = []
            await eventually(answers_within_a_second, timeout=20, interval=0.5)


async def test_concurrent_exports_per_user_are_bounded(
    start_servers: Callable[..., list[ServerProcess]], database_url: str, settings: Settings
) -> None:
    world = World(database_url, settings)
    (server,) = start_servers(1)  # default: 2 exports streaming per user
    owner, meeting_id = await _meeting_with_questions(world, QUESTIONS)
    other = await world.presenter(meeting_id, await world.user("Pat"))
    url = f"/api/v1/meetings/{meeting_id}/questions.csv"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with unread_export(server, owner.token, meeting_id), unread_export(server, owner.token, meeting_id):
            await asyncio.sleep(1)
            refused = await http.get(url, headers={"Authorization": f"Bearer {owner.token}"})
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
            # another user is not affected, and a whole export arrives with every row
            whole = await http.get(url, headers={"Authorization": f"Bearer {other.token}"})
            assert whole.status_code == 200
            assert whole.headers["content-type"] == "text/csv; charset=utf-8"
            lines = whole.text.count("\r\n")
            assert lines == QUESTIONS + 1, lines

        async def slot_is_free() -> bool:
            response = await http.get(url, headers={"Authorization": f"Bearer {owner.token}"})
            return response.status_code == 200

        await eventually(slot_is_free, timeout=15, interval=0.5)
