"""The Redis stream's publishing (`lua/publish.lua`) against a real Redis: one call for several rooms.

The same checks as the memory backend's (tests/channels/publishing.py), plus what only Redis
shows: one `publish_many` is one script run whatever the number of rooms, and each event is
PUBLISHed once on its room's channel with its seq and epoch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis

from channels.stream import RedisStream
from server.ratelimit import RateLimiter
from tests.channels.publishing import check_publish_many
from tests.channels.support import Note
from tests.support import RedisServer, ServiceUrls


async def test_the_lua_script_numbers_stores_and_recovers_like_the_memory_backend(
    services: ServiceUrls, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(services.redis_url)
    stream = RedisStream(client, redis_prefix)

    async def lose(room: str) -> None:  # a Redis restart without persistence, for one room
        await client.delete(stream._meta_key(room), stream._history_key(room))

    try:
        await check_publish_many(stream, lose)
    finally:
        await client.aclose()


async def test_several_rooms_go_out_in_one_script_run_and_one_publish_each(
    private_redis: Callable[[int], list[RedisServer]],
) -> None:
    [own] = private_redis(1)  # its command counts are this test's alone
    client = aioredis.Redis.from_url(own.url)
    listener = aioredis.Redis.from_url(own.url)
    stream = RedisStream(client, "t")
    rooms = ["open:x", "open:y", "open:z"]
    pubsub = listener.pubsub()
    try:
        await pubsub.subscribe(*(stream.channel(room) for room in rooms))
        for _ in rooms:
            assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"  # type: ignore[index]
        await stream.publish(Note(room="open:warm", text="load the script"))
        before = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
        seqs = await stream.publish_many([Note(room=room, text=room) for room in rooms])
        after = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
        assert seqs == [1, 1, 1]
        assert after - before == 1
        messages = []
        while len(messages) < len(rooms):
            message = await pubsub.get_message(timeout=2)
            assert message is not None
            messages.append(message)
        epochs = {room: (await stream.cursor(room)).epoch for room in rooms}
        for message, room in zip(messages, rooms, strict=True):
            epoch, seq, _published_at, kind, data = bytes(message["data"]).split(b" ", 4)
            assert message["channel"] == stream.channel(room)
            assert (epoch.decode(), int(seq), kind) == (epochs[room], 1, b"test.note")
            assert data == b'{"type":"test.note","room":"%s","text":"%s","seq":1}' % (room.encode(), room.encode())
        assert await asyncio.wait_for(pubsub.get_message(timeout=0.2), 1) is None
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await client.aclose()


async def test_scripts_forgotten_by_redis_are_loaded_again(private_redis: Callable[[int], list[RedisServer]]) -> None:
    """A Redis restarted without its script cache (SCRIPT FLUSH here): the next publish and rate-limit hit still run."""
    [own] = private_redis(1)
    client = aioredis.Redis.from_url(own.url)
    stream, limiter = RedisStream(client, "t"), RateLimiter(client)
    try:
        assert await stream.publish(Note(room="open:a", text="1")) == 1
        assert await limiter.hit("t:rl", 2, 60) == 0
        await client.script_flush()
        assert await stream.publish_many([Note(room="open:a", text="2"), Note(room="open:b", text="1")]) == [2, 1]
        assert await limiter.hit("t:rl", 2, 60) == 0
        await client.script_flush()
        await limiter.refund("t:rl")  # gives the second hit back
        assert await limiter.hit("t:rl", 2, 60) == 0
        assert await limiter.hit("t:rl", 2, 60) >= 1
    finally:
        await client.aclose()
