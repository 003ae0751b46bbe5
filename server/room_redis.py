"""The Redis servers that carry rooms: `REDIS_URL`, and the room shards of `ROOMCAST_ROOM_REDIS_URLS`.

Every process that publishes (servers, workers) builds one `RoomRedis` from its settings, so all
of them place a room on the same shard: `server.rooms.shard_key` names the key (the meeting id
for a meeting's rooms, the user id for a user room), `channels.shards` hashes it over the list.
Without room shards everything stays on `REDIS_URL`, through the same code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from channels.backend import PubSub
from channels.metrics import Metrics
from channels.pubsub import RedisPubSub
from channels.shard_health import ShardMonitor
from channels.sharding import ShardedPubSub, ShardedStream
from channels.shards import Layouts, ShardMap, redact_url
from channels.stream import RedisStream
from server.rooms import shard_key
from server.services import redis_client
from server.settings import Settings

log = logging.getLogger("roomcast.shards")

_REGISTER_LUA: Final = """
local last = redis.call('LINDEX', KEYS[1], -1)
if last ~= ARGV[1] then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
"""Append this shard list to the history unless it is already the latest; return the history."""

SHARD_CONNECT_TIMEOUT_S = 2.0
"""A shard that does not accept a connection within this is down (its rooms answer `unavailable`)."""
SHARD_COMMAND_TIMEOUT_S = 5.0
"""A shard command with no answer within this fails, rather than holding a frame forever."""


@dataclass
class RoomRedis:
    settings: Settings
    redis: Redis
    """`REDIS_URL`: job queue, rate limits, caches, control messages, and rooms without a shard key."""
    metrics: Metrics
    shards: list[Redis] = field(default_factory=list)
    """One client per room shard, in the configured order."""

    def __post_init__(self) -> None:
        prefix = self.settings.redis_prefix
        names = [redact_url(url) for url in self.settings.room_redis_urls]
        self.layouts = Layouts(shard_key, names)
        streams = [RedisStream(client, prefix, metrics=self.metrics) for client in self.shards]
        default = RedisStream(self.redis, prefix, metrics=self.metrics)
        for stream in (default, *streams):
            stream.generations = self.layouts.generations
        self.stream = ShardedStream(ShardMap(default, streams, shard_key), names)
        self._clients: ShardMap[Redis] = ShardMap(self.redis, self.shards, shard_key)

    @property
    def sharded(self) -> bool:
        return bool(self.shards)

    def pubsub(self) -> PubSub:
        """This process's subscriptions: one connection to `REDIS_URL`, plus one per shard it has members on."""
        prefix, metrics = self.settings.redis_prefix, self.metrics
        default = RedisPubSub(self.redis, prefix, metrics=metrics)
        if not self.shards:
            return default
        shards = [RedisPubSub(client, prefix, metrics=metrics, control=False) for client in self.shards]
        return ShardedPubSub(ShardMap(default, shards, shard_key))

    def redis_for(self, room: str) -> Redis:
        """The Redis that holds `room` (its presence lives there too)."""
        return self._clients.for_room(room)

    def monitor(self) -> ShardMonitor | None:
        """Pings every shard for `/health/ready` and the `roomcast_redis_shard_up` gauge; None without shards."""
        if not self.shards:
            return None
        return ShardMonitor(list(zip(self.settings.room_redis_urls, self.shards, strict=True)), self.metrics)

    async def register_layout(self) -> None:
        """Record this process's shard list in the deployment's history (on `REDIS_URL`) and load it.

        Call it before publishing. If `REDIS_URL` cannot be reached the process runs as if its list
        were the first: epochs it begins then look old to the others, which replace them (safe).
        """
        key = f"{self.settings.redis_prefix}:room_shards:layouts"
        current = msgspec.json.encode(self.layouts.history[-1])
        try:
            pending: Any = self.redis.eval(_REGISTER_LUA, 1, key, current)
            raw = await pending
        except (RedisError, OSError) as err:
            log.warning("room_shards.layout_not_registered", extra={"error": type(err).__name__})
            return
        history = [msgspec.json.decode(entry, type=list[str]) for entry in raw]
        self.layouts.load(history)
        if len(history) > 1:
            log.info("room_shards.layout", extra={"generation": self.layouts.generation, "shards": len(self.shards)})

    async def close(self) -> None:
        """Close the shards' clients (`REDIS_URL`'s belongs to whoever made it)."""
        await asyncio.gather(*(client.aclose() for client in self.shards), return_exceptions=True)


def room_redis(settings: Settings, redis: Redis, metrics: Metrics) -> RoomRedis:
    shards = [
        redis_client(url, connect_timeout_s=SHARD_CONNECT_TIMEOUT_S, command_timeout_s=SHARD_COMMAND_TIMEOUT_S)
        for url in settings.room_redis_urls
    ]
    return RoomRedis(settings, redis, metrics, shards)


__all__ = ["RoomRedis", "room_redis"]
