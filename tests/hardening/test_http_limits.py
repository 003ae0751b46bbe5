"""Issue 16 defect 3, HTTP side: a request head that never completes is cut after the header timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from tests.support import ServerProcess
from tests.wsclient import connect

SOCKETS = 100
TIMEOUT_S = 2


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""  # EOF: the server closed it
    except (TimeoutError, ConnectionError):
        return False


async def test_half_sent_request_heads_are_closed_after_the_header_timeout(
    start_servers: Callable[..., list[ServerProcess]],
) -> None:
    (server,) = start_servers(1, ROOMCAST_HTTP_HEADER_TIMEOUT_S=str(TIMEOUT_S))
    streams = []
    for n in range(SOCKETS):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n" if n % 2 else b"GET /heal")  # never finished
        await writer.drain()
        streams.append((reader, writer))
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)  # sends nothing at all
    started = time.monotonic()
    # a WebSocket outlives the header timeout (its head was complete), and a normal request still works
    async with connect(server.ws_url) as ws, httpx.AsyncClient(base_url=server.url) as http:
        closed = await asyncio.gather(
            *(_closed_by_server(reader, TIMEOUT_S + 8) for reader, _ in [*streams, (idle_reader, idle_writer)])
        )
        elapsed = time.monotonic() - started
        assert sum(closed) == SOCKETS + 1, f"{sum(closed)} of {SOCKETS + 1} closed"  # before: 0
        assert elapsed < TIMEOUT_S + 8
        assert (await http.get("/health/live")).status_code == 200
        assert ws.close_code is None
        assert (await ws.request({"type": "ping"}))["code"] == "unauthorized"  # still open, still answering
    for _, writer in [*streams, (idle_reader, idle_writer)]:
        writer.close()
