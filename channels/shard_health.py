"""Whether each room shard answers: `ShardMonitor` pings every shard on a timer and when `/health/ready`
asks, logs each shard going down and coming back (with how long it was down), and exports
`roomcast_redis_shard_up` per shard (URLs without passwords).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Gauge
from redis.asyncio import Redis

from channels.metrics import Metrics
from channels.shards import redact_url

log = logging.getLogger("roomcast.shards")


class ShardMonitor:
    """Whether each room shard answers: pinged every `interval_s`, and on demand for `/health/ready`."""

    def __init__(
        self,
        shards: Sequence[tuple[str, Redis]],
        metrics: Metrics,
        *,
        interval_s: float = 2.0,
        timeout_s: float = 1.0,
    ) -> None:
        self.shards = [(redact_url(url), client) for url, client in shards]
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.up: dict[str, bool] = {name: True for name, _ in self.shards}
        self.down_since: dict[str, float] = {}
        self._gauge = Gauge(
            "roomcast_redis_shard_up",
            "Whether each room shard (ROOMCAST_ROOM_REDIS_URLS, without passwords) answered its last ping",
            ["shard"],
            registry=metrics.registry,
        )
        for name in self.up:
            self._gauge.labels(name).set(1)
        self._task: asyncio.Task[None] | None = None

    async def _ping(self, name: str, client: Redis) -> bool:
        try:
            pending: Any = client.ping()
            await asyncio.wait_for(pending, self.timeout_s)
        except Exception:
            return False
        return True

    async def check(self) -> dict[str, bool]:
        """Ping every shard now; returns (and remembers) shard name -> answered."""
        answers = await asyncio.gather(*(self._ping(name, client) for name, client in self.shards))
        for (name, _), up in zip(self.shards, answers, strict=True):
            if up != self.up.get(name):
                if up:
                    log.info("shards.up", extra={"shard": name, "down_s": round(self._down_for(name), 2)})
                    self.down_since.pop(name, None)
                else:
                    log.warning("shards.down", extra={"shard": name})
                    self.down_since[name] = time.monotonic()
            self.up[name] = up
            self._gauge.labels(name).set(1 if up else 0)
        return dict(self.up)

    def _down_for(self, name: str) -> float:
        since = self.down_since.get(name)
        return 0.0 if since is None else time.monotonic() - since

    async def start(self) -> None:
        if self.shards and self._task is None:
            self._task = asyncio.create_task(self._run(), name="roomcast.shards.monitor")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.check()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


__all__ = ["ShardMonitor"]
