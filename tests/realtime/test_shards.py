"""Rooms over several Redis servers (ROOMCAST_ROOM_REDIS_URLS): real redis-servers, real server processes.

Twenty meetings spread over two shards deliver to members on both processes in order; losing a
shard costs only its rooms, whose members get the unsolicited `joined` (new epoch) when it is
back; adding a third shard moves some rooms to a new epoch while the others recover. The
shard-loss timings are printed (run with `-s` to read them).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import redis.asyncio as aioredis

from channels.metrics import Metrics
from channels.shards import fnv1a_64, jump_hash
from server.room_redis import RoomRedis, room_redis
from server.services import redis_client
from server.settings import Settings
from tests.realtime.test_resilience import Note, assert_no_silent_gap
from tests.support import RedisServer, ServerProcess, eventually
from tests.wsclient import Person, World, WsClient, connect

StartServers = Callable[..., list[ServerProcess]]
PrivateRedis = Callable[[int], list[RedisServer]]
MEETINGS = 20


def shard_of(meeting_id: str, shards: int) -> int:
    """Where `meeting:<id>` lives among `shards` shards (the documented placement, computed independently)."""
    return jump_hash(fnv1a_64(meeting_id.encode()), shards)


def shard_env(shards: list[RedisServer]) -> dict[str, str]:
    return {"ROOMCAST_ROOM_REDIS_URLS": ",".join(s.url for s in shards)}


async def room_keys(url: str, prefix: str) -> set[str]:
    """The rooms whose stream or presence keys live on the Redis at `url`."""
    client = aioredis.Redis.from_url(url)
    try:
        rooms = set()
        for pattern in (f"{prefix}:room:*", f"{prefix}:presence:*"):
            async for key in client.scan_iter(match=pattern, count=500):
                text = key.decode()
                rooms.add(text[text.index("{") + 1 : text.index("}")])
        return rooms
    finally:
        await client.aclose()


async def pubsub_connections(shard: RedisServer, prefix: str) -> int:
    client = aioredis.Redis.from_url(shard.url)
    try:
        return [c.get("name") for c in await client.client_list(_type="pubsub")].count(f"{prefix}:pubsub")
    finally:
        await client.aclose()


async def ask(ws: WsClient, meeting: str, text: str) -> dict[str, Any]:
    return await ws.request({"type": "ask", "room": f"meeting:{meeting}", "text": text}, timeout=10)


async def spread_meetings(world: World, owner: Person, shards: int, count: int = MEETINGS) -> list[str]:
    """`count` meetings, at least three on each shard (ids are random: make more until they are)."""
    meetings: list[str] = []
    while len(meetings) < count or min(sum(shard_of(m, shards) == s for m in meetings) for s in range(shards)) < 3:
        meetings.append(await world.meeting(owner, title=f"Meeting {len(meetings)}"))
    return meetings


async def test_twenty_meetings_over_two_shards_deliver_in_order_on_both_processes(
    start_servers: StartServers, private_redis: PrivateRedis, world: World, redis_prefix: str, services: Any
) -> None:
    shards = private_redis(2)
    servers = start_servers(2, **shard_env(shards))
    owner = await world.user("Olive")
    meetings = await spread_meetings(world, owner, 2)
    async with connect(servers[0].ws_url, owner.token) as a, connect(servers[1].ws_url, owner.token) as b:
        for meeting in meetings:
            await a.join(f"meeting:{meeting}")
            await b.join(f"meeting:{meeting}")
        for round_ in range(3):
            for n, meeting in enumerate(meetings):
                answer = await ask(a if (n + round_) % 2 else b, meeting, f"question {round_} in {n}")
                assert answer["type"] == "reply", answer
        for ws in (a, b):
            for meeting in meetings:
                room = f"meeting:{meeting}"
                await ws.wait_count(lambda f, room=room: f.get("room") == room and f["type"] == "question.created", 3)
                assert_no_silent_gap(ws, room, ws.events(room)[-1]["seq"])  # presence events come in between
        # one pub/sub connection per server process on each shard it has members on
        for shard in shards:
            assert await pubsub_connections(shard, redis_prefix) == 2

    # each shard holds exactly its meetings' rooms; REDIS_URL holds no room at all
    placed = [await room_keys(shard.url, redis_prefix) for shard in shards]
    for index, rooms in enumerate(placed):
        mine = [m for m in meetings if shard_of(m, 2) == index]
        expected = {f"meeting:{m}" for m in mine} | {f"meeting:{m}:moderation" for m in mine}
        assert {r for r in rooms if r.startswith("meeting:")} == expected
    user_shard = shard_of(owner.id, 2)
    assert f"user:{owner.id}" in placed[user_shard]  # the asker's own room, on the owner's shard
    assert await room_keys(services.redis_url, redis_prefix) == set()
    # and a process lets a shard's connection go a little after its last member there left
    for shard in shards:
        await eventually(lambda shard=shard: _no_pubsub(shard, redis_prefix), timeout=15)


async def _no_pubsub(shard: RedisServer, prefix: str) -> bool:
    return await pubsub_connections(shard, prefix) == 0


async def health(server: ServerProcess) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(server.url + "/health/ready", timeout=5)


async def shard_gauge(server: ServerProcess, shard: RedisServer) -> float | None:
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url + "/metrics")).text
    for line in text.splitlines():
        if line.startswith(f'roomcast_redis_shard_up{{shard="{shard.url}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_shard_that_goes_down_costs_only_its_rooms_and_its_members_are_told_when_it_is_back(
    start_servers: StartServers, private_redis: PrivateRedis, world: World
) -> None:
    shards = private_redis(2)
    servers = start_servers(2, **shard_env(shards))
    owner = await world.user("Olive")
    while shard_of(owner.id, 2) != 1:  # the owner's own room is lost with the shard too
        owner = await world.user("Olive")
    meetings = await spread_meetings(world, owner, 2)
    lost = [m for m in meetings if shard_of(m, 2) == 1]
    kept = [m for m in meetings if shard_of(m, 2) == 0]
    timings: dict[str, float] = {}
    async with connect(servers[0].ws_url, owner.token) as a, connect(servers[1].ws_url, owner.token) as b:
        first: dict[str, dict[str, Any]] = {}
        for meeting in meetings:
            first[meeting] = await a.join(f"meeting:{meeting}")
            await b.join(f"meeting:{meeting}")
        for meeting in meetings:
            assert (await ask(a, meeting, "before"))["type"] == "reply"

        shards[1].stop()  # SIGKILL: everything it held is gone
        down_at = time.monotonic()

        answer = await ask(b, lost[0], "while down")
        timings["frame answered unavailable"] = time.monotonic() - down_at
        assert answer["type"] == "error" and answer["code"] == "unavailable", answer
        for n, meeting in enumerate(kept):
            assert (await ask(a if n % 2 else b, meeting, "while down"))["type"] == "reply"
        for ws in (a, b):
            for meeting in kept:
                room = f"meeting:{meeting}"
                await ws.wait_count(lambda f, room=room: f.get("room") == room and f["type"] == "question.created", 2)

        async def degraded() -> bool:
            response = await health(servers[0])
            body = response.json()
            return response.status_code == 200 and body.get("status") == "degraded" and bool(body.get("redis_shards"))

        await eventually(degraded, timeout=10)
        timings["/health/ready degraded"] = time.monotonic() - down_at
        body = (await health(servers[1])).json()
        assert body["status"] == "degraded"
        assert body["redis_shards"] == {shards[0].url: "up", shards[1].url: "down"}
        await eventually(lambda: _gauge_is(servers[0], shards[1], 0.0), timeout=10)
        assert await shard_gauge(servers[0], shards[0]) == 1.0

        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            # a socket opens while its user's room is on the lost shard; that room follows later
            late = await stack.enter_async_context(connect(servers[1].ws_url, owner.token))
            timings["auth answered (own room's shard down)"] = time.monotonic() - started
            started = time.monotonic()
            refused = await late.request({"type": "join", "room": f"meeting:{lost[0]}"}, timeout=15)
            timings["join answered unavailable"] = time.monotonic() - started
            assert refused["type"] == "error" and refused["code"] == "unavailable", refused
            assert (await late.join(f"meeting:{kept[0]}"))["recovered"] is False

            shards[1].start()  # back, empty (no persistence)
            up_at = time.monotonic()
            own = await late.wait_for(lambda f: f["type"] == "joined" and f["room"] == f"user:{owner.id}", 20)
            assert "ref" not in own and own["recovered"] is False
        for ws in (a, b):
            for meeting in lost:
                room = f"meeting:{meeting}"
                told = await ws.wait_for(
                    lambda f, room=room: f["type"] == "joined" and f["room"] == room and "ref" not in f, timeout=20
                )
                assert told["recovered"] is False and "snapshot" in told
                assert told["epoch"] != first[meeting]["epoch"], "an empty shard means a new epoch"
                texts = {q["text"] for q in told["snapshot"]["questions"]}
                assert texts == ({"before", "while down"} if meeting == lost[0] else {"before"})
        timings["members told (unsolicited joined) after the shard is back"] = time.monotonic() - up_at

        async def ready() -> bool:
            return (await health(servers[0])).json().get("status") == "ok"

        await eventually(ready, timeout=10)
        timings["/health/ready ok again after the shard is back"] = time.monotonic() - up_at
        for meeting in lost:
            assert (await ask(a, meeting, "after"))["type"] == "reply"
        for ws in (a, b):
            for meeting in meetings:
                room = f"meeting:{meeting}"
                # lost meetings: "before" (old epoch) and "after"; the question stored while its shard was
                # down was never an event: the snapshot of the unsolicited `joined` carries it
                await ws.wait_count(lambda f, room=room: f.get("room") == room and f["type"] == "question.created", 2)
                assert_no_silent_gap(ws, room, ws.events(room)[-1]["seq"])
    print("\nshard-loss timings (s): " + ", ".join(f"{k}: {v:.2f}" for k, v in timings.items()))


async def _gauge_is(server: ServerProcess, shard: RedisServer, value: float) -> bool:
    return await shard_gauge(server, shard) == value


async def test_adding_a_shard_moves_some_rooms_to_a_new_epoch_and_the_others_recover(
    start_servers: StartServers, private_redis: PrivateRedis, world: World
) -> None:
    shards = private_redis(3)
    servers = start_servers(2, **shard_env(shards[:2]))
    owner = await world.user("Olive")
    meetings: list[str] = []
    while (
        len(meetings) < MEETINGS
        or sum(shard_of(m, 3) == 2 for m in meetings) < 3
        or sum(shard_of(m, 3) != 2 for m in meetings) < 3
    ):
        meetings.append(await world.meeting(owner))
    seen: dict[str, tuple[int, str]] = {}
    async with connect(servers[0].ws_url, owner.token) as a:
        for meeting in meetings:
            await a.join(f"meeting:{meeting}")
            assert (await ask(a, meeting, "before the new shard"))["type"] == "reply"
        for meeting in meetings:
            room = f"meeting:{meeting}"
            event = await a.wait_for(lambda f, room=room: f.get("room") == room and f["type"] == "question.created")
            joined = next(f for f in a.frames if f["type"] == "joined" and f["room"] == room)
            seen[meeting] = (event["seq"], joined["epoch"])
    for server in servers:
        server.stop()

    restarted = start_servers(2, **shard_env(shards))  # a third shard, appended
    for n, meeting in enumerate(meetings):
        async with connect(restarted[n % 2].ws_url, owner.token) as again:
            seq, epoch = seen[meeting]
            joined = await again.join(f"meeting:{meeting}", since=seq, epoch=epoch)
            if shard_of(meeting, 3) == 2:  # moved to the new shard: a new epoch there
                assert joined["recovered"] is False and "snapshot" in joined, joined
                assert joined["epoch"] != epoch
            else:  # stayed where it was (jump hash moves rooms only to the new shard)
                assert shard_of(meeting, 3) == shard_of(meeting, 2)
                assert joined["recovered"] is True and joined["epoch"] == epoch, joined
                assert joined["seq"] >= seq  # presence events came after (the members left)


async def test_a_room_that_moves_back_to_a_shard_never_continues_the_copy_it_left_there(
    settings: Settings, private_redis: PrivateRedis
) -> None:
    """Shards appended, then removed again: the room's old copy on its first shard is stale, not resumed."""
    a, b, c = (s.url for s in private_redis(3))
    ids = [str(uuid.uuid4()) for _ in range(400)]
    moving = next(m for m in ids if shard_of(m, 2) == 1 and shard_of(m, 3) == 2)  # b, then c, then b again
    staying = next(m for m in ids if shard_of(m, 2) == shard_of(m, 3) == 0)  # a throughout
    rooms = {m: f"meeting:{m}" for m in (moving, staying)}

    async def deployment(*urls: str) -> RoomRedis:
        rooms_redis = room_redis(
            msgspec.structs.replace(settings, room_redis_urls=urls), redis_client(settings.redis_url), Metrics()
        )
        await rooms_redis.register_layout()
        return rooms_redis

    first = await deployment(a, b)
    for room in rooms.values():
        for n in range(3):
            await first.stream.publish(Note(room=room, text=str(n)))
    before = {m: await first.stream.cursor(room) for m, room in rooms.items()}
    second = await deployment(a, b, c)
    await second.stream.publish(Note(room=rooms[moving], text="on the new shard"))
    third = await deployment(a, b)  # the new shard removed again
    back = await third.stream.cursor(rooms[moving], since=3, epoch=before[moving].epoch)
    assert back.recovered is False and back.epoch != before[moving].epoch, "the copy left on b is stale"
    kept = await third.stream.cursor(rooms[staying], since=2, epoch=before[staying].epoch)
    assert kept.recovered is True and kept.epoch == before[staying].epoch and len(kept.events) == 1
    assert third.layouts.generation == 2
    for deployed in (first, second, third):
        await deployed.close()
        await deployed.redis.aclose()
