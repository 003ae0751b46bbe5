"""The long-lived resources of one server process, opened in the app's lifespan and injected into handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from channels.broker import Broker
from channels.metrics import Metrics
from server.db import Database
from server.settings import Settings


@dataclass(slots=True)
class Services:
    """What handlers need beyond the request: settings, the database and Redis.

    Litestar injects it as the `services` dependency. Redis keys are always built with
    `key()`, so every key carries the configured prefix.
    """

    settings: Settings
    db: Database
    redis: Redis
    broker: Broker
    """Publishes room events (REST handlers and frame handlers alike)."""
    metrics: Metrics = field(default_factory=Metrics)
    """This app's Prometheus registry (`/metrics`); the realtime core's metrics live in it."""

    def key(self, *parts: str) -> str:
        """`<prefix>:<part>:<part>...`, the only way roomcast names a Redis key."""
        return ":".join((self.settings.redis_prefix, *parts))
