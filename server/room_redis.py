"""The Redis servers that carry rooms: `REDIS_URL`, and the room shards of `ROOMCAST_ROOM_REDIS_URLS`.

Every process that publishes (servers, workers) builds one `RoomRedis` from its settings, so all
of them place a room on the same shard: `server.rooms.shard_key` names the key (the meeting id
for a meeting's rooms, the user id for a user room), `channels.shards` hashes it over the list.
Without room shards everything stays on `REDIS_URL`, through the same code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis

from channels.backend import PubSub
from channels.metrics import Metrics
from channels.pubsub import RedisPubSub
from channels.sharding import ShardedPubSub, ShardedStream, ShardMonitor
from channels.shards import ShardMap, redact_url
from channels.stream import RedisStream
from server.rooms import shard_key
from server.services import redis_client
from server.settings import Settings

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
        streams = [RedisStream(client, prefix, metrics=self.metrics) for client in self.shards]
        self.stream = ShardedStream(
            ShardMap(RedisStream(self.redis, prefix, metrics=self.metrics), streams, shard_key),
            [redact_url(url) for url in self.settings.room_redis_urls],
        )
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
