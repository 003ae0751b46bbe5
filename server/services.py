"""The long-lived resources of one server process, opened in the app's lifespan and injected into handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import BlockingConnectionPool, Redis

from channels.metrics import Metrics
from channels.seams import Publisher
from channels.shard_health import ShardMonitor
from server.db import Database
from server.settings import Settings

REDIS_POOL_SIZE = 64
"""Sockets to Redis per process. Redis runs commands one at a time, so more buy nothing."""
REDIS_POOL_WAIT_S = 10.0
"""How long a command waits for a free socket before failing (as if Redis were down)."""


def redis_client(
    url: str | None, *, connect_timeout_s: float | None = None, command_timeout_s: float | None = None
) -> Redis:
    """A Redis client whose commands share at most `REDIS_POOL_SIZE` sockets.

    redis-py's default pool opens a socket for every command issued while the others are busy
    and keeps them all: 10,000 clients connecting at once left ~10,000 connections to Redis and
    spent a third of a reconnect storm's CPU opening them. A burst now waits for a free socket.
    """
    pool = BlockingConnectionPool.from_url(
        url or "redis://127.0.0.1:6379/0",
        max_connections=REDIS_POOL_SIZE,
        timeout=REDIS_POOL_WAIT_S,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=command_timeout_s,
    )
    return Redis(connection_pool=pool)


@dataclass(slots=True)
class Services:
    """What handlers need beyond the request: settings, the database and Redis.

    Litestar injects it as the `services` dependency. Redis keys are always built with
    `key()`, so every key carries the configured prefix.
    """

    settings: Settings
    db: Database
    redis: Redis
    broker: Publisher
    """All features see of the realtime core: publish room events, disconnect users (REST and frame handlers)."""
    metrics: Metrics = field(default_factory=Metrics)
    """This app's Prometheus registry (`/metrics`); the realtime core's metrics live in it."""
    room_shards: ShardMonitor | None = None
    """Whether each room shard (`ROOMCAST_ROOM_REDIS_URLS`) answers; None without shards."""

    def key(self, *parts: str) -> str:
        """`<prefix>:<part>:<part>...`, the only way roomcast names a Redis key."""
        return ":".join((self.settings.redis_prefix, *parts))
