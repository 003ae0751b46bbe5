"""What must hold when things go wrong: broken pub/sub, killed and stopped servers, slow and silent peers.

Each test starts its own servers (they get killed, stopped or configured differently).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from channels.broker import Broker
from channels.protocol import Event
from tests.support import ServerProcess, eventually
from tests.wsclient import World, WsClient, connect, test_broker

StartServers = Callable[..., list[ServerProcess]]


class Note(Event, tag="test.note", kw_only=True):
    text: str


def assert_no_silent_gap(ws: WsClient, room: str, final: int) -> None:
    """Every event is the previous seq + 1, or follows a `joined` that (re)states where the room is."""
    current: int | None = None
    for frame in ws.frames:
        if frame.get("room") != room:
            continue
        if frame["type"] == "joined":
            if not frame["recovered"]:
                assert "snapshot" in frame
            current = frame["seq"]
        elif "seq" in frame:
            assert current is not None and frame["seq"] == current + 1, (current, frame["seq"])
            current = frame["seq"]
    assert current == final


async def publish_notes(broker: Broker, room: str, total: int, size: int = 1000) -> None:
    """`total` events of about `size` bytes, 250 in flight at a time."""
    text = "x" * size
    for start in range(0, total, 250):
        await asyncio.gather(
            *(broker.publish(Note(room=room, text=text)) for _ in range(start, min(total, start + 250)))
        )


async def metric(server: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url + "/metrics")).text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_broken_pubsub_connection_resubscribes_and_sends_an_unsolicited_joined(
    start_servers: StartServers, world: World, redis: aioredis.Redis, redis_prefix: str
) -> None:
    servers = start_servers(2)
    owner = await world.user("Olive")
    meeting = await world.meeting(owner)
    room = f"meeting:{meeting}"
    async with connect(servers[0].ws_url, owner.token) as a, connect(servers[1].ws_url, owner.token) as b:
        await a.join(room)
        await b.join(room)
        killed = asyncio.Event()

        async def kill_pubsub_connections() -> None:
            await asyncio.sleep(0.3)
            clients = await redis.client_list(_type="pubsub")
            ours = [c["id"] for c in clients if c.get("name") == f"{redis_prefix}:pubsub"]
            assert len(ours) == 2
            for client_id in ours:
                await redis.execute_command("CLIENT", "KILL", "ID", client_id)
            killed.set()

        async def publish() -> int:
            broker = Broker(redis, redis_prefix)
            last = 0
            for n in range(300):
                last = await broker.publish(Note(room=room, text=str(n)))
                await asyncio.sleep(0.004)
            return last

        final, _ = await asyncio.gather(publish(), kill_pubsub_connections())
        for ws in (a, b):
            await ws.wait_count(lambda f, final=final: f.get("room") == room and f.get("seq") == final, 1, 15)
            told = [f for f in ws.frames if f["type"] == "joined" and "ref" not in f and f["room"] == room]
            assert told and told[0]["recovered"] is False and told[0]["snapshot"]["meeting"]["id"] == meeting
            assert_no_silent_gap(ws, room, final)
        for server in servers:
            assert await metric(server, "roomcast_pubsub_reconnects_total") >= 1


async def test_presence_drops_after_a_server_is_killed(start_servers: StartServers, world: World) -> None:
    servers = start_servers(2, ROOMCAST_PRESENCE_TTL_S="2")
    owner, ann = await asyncio.gather(world.user("Olive"), world.user("Ann"))
    meeting = await world.meeting(owner)
    await world.participant(meeting, ann)
    room = f"meeting:{meeting}"
    async with connect(servers[1].ws_url, owner.token) as watcher, connect(servers[0].ws_url, ann.token) as doomed:
        await watcher.join(room)
        await doomed.join(room)
        await watcher.wait_for(lambda f: f["type"] == "presence" and f["count"] == 2)
        servers[0].kill()  # SIGKILL: no goodbye to Redis
        started = time.monotonic()
        await watcher.wait_for(lambda f: f["type"] == "presence" and f["count"] == 1, timeout=10)
        assert time.monotonic() - started < 6


async def test_sigterm_closes_every_socket_with_1012_and_exits_in_time(
    start_servers: StartServers, world: World
) -> None:
    (server,) = start_servers(1, ROOMCAST_IN_PROCESS_WORKER="1")  # PITFALL 8: the worker must not take SIGTERM
    owner = await world.user("Olive")
    meeting = await world.meeting(owner)
    async with (
        connect(server.ws_url, owner.token) as in_room,
        connect(server.ws_url, owner.token) as idle,
        connect(server.ws_url) as unauthenticated,
    ):
        await in_room.join(f"meeting:{meeting}")
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        codes = await asyncio.gather(*(ws.wait_closed() for ws in (in_room, idle, unauthenticated)))
        assert codes == [1012, 1012, 1012]
        assert server.process is not None
        assert await asyncio.to_thread(server.process.wait, 10) == 0
        assert time.monotonic() - started < 10
    assert "Traceback" not in server.log()


async def test_a_foreign_origin_is_refused_with_403_before_the_upgrade(
    start_servers: StartServers, world: World
) -> None:
    (server,) = start_servers(1, ROOMCAST_ALLOWED_ORIGINS="https://good.example,https://also.example")
    ada = await world.user("Ada")
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(server.ws_url, ada.token, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    for origin in ("https://good.example", "https://also.example", None):
        async with connect(server.ws_url, ada.token, origin=origin) as ws:
            assert ws.welcome is not None


WRITE_PATHS = pytest.mark.parametrize(
    "ws_impl",
    [
        pytest.param("websockets-sansio", id="direct-writes"),  # the gateway writes frames to the transport
        pytest.param("websockets", id="asgi-send"),  # no DirectSocket: every frame through ASGI send
    ],
)


@WRITE_PATHS
async def test_a_slow_consumer_is_closed_with_4008_while_a_fast_one_keeps_up(
    start_servers: StartServers, world: World, redis_prefix: str, services: object, ws_impl: str
) -> None:
    """PITFALL 3: a client that never reads during 10,000 events."""
    (server,) = start_servers(1, args=("--ws", ws_impl))
    owner = await world.user("Olive")
    meeting = await world.meeting(owner)
    room = f"meeting:{meeting}"
    total = 10_000
    redis_url = services.redis_url  # type: ignore[attr-defined]
    async with (
        connect(server.ws_url, owner.token) as fast,
        connect(server.ws_url, owner.token, rcvbuf=16384, max_queue=1) as slow,
        test_broker(redis_url, redis_prefix) as broker,
    ):
        first = await fast.join(room)
        await slow.join(room)
        await slow.stop_reading()
        await publish_notes(broker, room, total)
        last = first["seq"] + total + 5  # presence events are in the room's seq too
        await fast.wait_count(lambda f: f.get("type") == "test.note", total, timeout=30)
        await eventually(lambda: metric(server, "roomcast_ws_queue_overflows_total"), timeout=10)
        slow.start_reading()
        assert await slow.wait_closed() == 4008
        assert len(fast.events(room, "test.note")) == total
        assert_no_silent_gap(fast, room, fast.events(room)[-1]["seq"])
        assert fast.events(room)[-1]["seq"] <= last
        assert (await fast.request({"type": "ping"}))["type"] == "pong"
        assert await metric(server, "roomcast_ws_queue_overflows_total") == 1.0


@WRITE_PATHS
async def test_a_briefly_stalled_reader_gets_every_event_in_order_once_it_reads_again(
    start_servers: StartServers, world: World, redis_prefix: str, services: object, ws_impl: str
) -> None:
    """Frames that queue while the socket's buffers are full go out later, in order, none lost."""
    (server,) = start_servers(1, args=("--ws", ws_impl))
    owner = await world.user("Olive")
    meeting = await world.meeting(owner)
    room = f"meeting:{meeting}"
    total = 1_200  # ~1.2 MB: far past the socket buffers, well under the 2,000-frame send queue
    async with (
        connect(server.ws_url, owner.token, rcvbuf=16384, max_queue=1) as stalled,
        test_broker(services.redis_url, redis_prefix) as broker,  # type: ignore[attr-defined]
    ):
        first = await stalled.join(room)
        await stalled.stop_reading()
        await publish_notes(broker, room, total)
        await asyncio.sleep(0.5)
        stalled.start_reading()
        await stalled.wait_count(lambda f: f.get("type") == "test.note", total, timeout=30)
        assert (await stalled.request({"type": "ping"}))["type"] == "pong"
        notes = stalled.events(room, "test.note")
        assert len(notes) == total
        assert_no_silent_gap(stalled, room, stalled.events(room)[-1]["seq"])
        assert stalled.events(room)[-1]["seq"] > first["seq"]
    assert await metric(server, "roomcast_ws_queue_overflows_total") == 0.0
    direct = ws_impl == "websockets-sansio"
    assert re.search(rf"ws\.authenticated .*direct={direct}", server.log()), server.log()[-2000:]


async def test_a_silent_peer_is_dropped_within_two_heartbeats(start_servers: StartServers, world: World) -> None:
    (server,) = start_servers(1, ROOMCAST_HEARTBEAT_S="1")
    ada = await world.user("Ada")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    opened = time.monotonic()
    async with connect(server.ws_url, ada.token) as lively:  # answers pings: stays
        while await asyncio.wait_for(reader.read(4096), 5):  # pings arrive; we never answer
            pass
        assert time.monotonic() - opened < 2 * 1 + 1.0
        assert lively.welcome is not None and lively.welcome["heartbeat_s"] == 1
        await asyncio.sleep(2.5)
        assert (await lively.request({"type": "ping"}))["type"] == "pong"
    writer.close()


async def test_closing_mid_burst_and_many_join_leave_cycles_leave_nothing_behind(
    start_servers: StartServers, world: World, redis: aioredis.Redis, redis_prefix: str, services: object
) -> None:
    """PITFALL 6 and 2: no unhandled exception, no subscriber, no room left in memory or in Redis."""
    (server,) = start_servers(1)
    owner = await world.user("Olive")
    meetings = [await world.meeting(owner) for _ in range(100)]
    async with test_broker(services.redis_url, redis_prefix) as broker:  # type: ignore[attr-defined]
        async with connect(server.ws_url, owner.token) as ws:
            room = f"meeting:{meetings[0]}"
            await ws.join(room)
            burst = asyncio.gather(*(broker.publish(Note(room=room, text=str(n))) for n in range(1000)))
            await ws.wait_count(lambda f: f.get("type") == "test.note", 50)
            await ws.connection.close()
            await burst

        async def cycles(chunk: list[str]) -> None:  # 20 rooms per socket keeps each under the frame rate limit
            async with connect(server.ws_url, owner.token) as ws:
                for meeting in chunk:
                    joined = await ws.request({"type": "join", "room": f"meeting:{meeting}"})
                    assert joined["type"] == "joined", joined
                    left = await ws.request({"type": "leave", "room": f"meeting:{meeting}"})
                    assert left["type"] == "reply"

        for _ in range(2):
            await asyncio.gather(*(cycles(meetings[i : i + 20]) for i in range(0, len(meetings), 20)))

    async def nothing_left() -> bool:
        return await metric(server, "roomcast_rooms") == 0.0 and await metric(server, "roomcast_ws_connections") == 0.0

    await eventually(nothing_left, timeout=5)
    channels = [broker.channel(f"meeting:{m}") for m in meetings]
    counts = await redis.pubsub_numsub(*channels)
    assert all(count == 0 for _, count in counts)
    log = server.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
