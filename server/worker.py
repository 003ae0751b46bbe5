"""The SAQ worker: job functions, cron jobs, and the startup/shutdown that open its resources.

`roomcast worker` runs it as its own process; with embedded services `roomcast serve` runs it
inside the web process, where it must not install signal handlers (SAQ's `Worker.start()`
would replace uvicorn's and SIGTERM would no longer close sockets with 1012).
Jobs are `async def name(ctx, *, ...)`; remember SAQ's defaults: a 10 s timeout and
`retries=1`, which means a single attempt, so every job here sets both.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from saq import CronJob, Worker
from saq.queue.redis import RedisQueue
from saq.types import Context as SaqContext

from server.db import Database
from server.settings import Settings

log = logging.getLogger("roomcast.worker")


class Context(SaqContext, total=False):
    """What every job receives: SAQ's own fields plus this worker's resources."""

    db: Database
    settings: Settings


def make_queue(settings: Settings) -> RedisQueue:
    """The job queue; its name carries the Redis prefix so deployments sharing a Redis stay apart."""
    redis: Redis = Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
    return RedisQueue(redis, name=f"{settings.redis_prefix}:jobs")


async def purge_expired_refresh_tokens(ctx: Context) -> int:
    """Delete refresh tokens that expired more than a day ago (they can no longer be presented)."""
    database: Database = ctx["db"]
    async with database.pool.acquire() as connection:
        result: str = await connection.execute(
            "DELETE FROM refresh_tokens WHERE expires_at < $1 - interval '1 day'", datetime.now(UTC)
        )
    deleted = int(result.split()[-1])
    log.info("job.purge_refresh_tokens", extra={"deleted": deleted})
    return deleted


class InProcessWorker(Worker[Context]):
    """A worker that leaves signal handling to the web server it runs inside."""

    SIGNALS: list[Any] = []


def create_worker(settings: Settings, *, in_process: bool = False) -> Worker[Context]:
    database = Database(settings.database_url or "", min_size=0, max_size=5)

    async def startup(ctx: Context) -> None:
        await database.start()
        ctx["db"] = database
        ctx["settings"] = settings
        log.info("worker.started", extra={"queue": f"{settings.redis_prefix}:jobs"})

    async def shutdown(ctx: Context) -> None:
        await database.close()
        log.info("worker.stopped")

    worker_class: type[Worker[Context]] = InProcessWorker if in_process else Worker
    return worker_class(
        make_queue(settings),
        functions=[purge_expired_refresh_tokens],
        cron_jobs=[CronJob(purge_expired_refresh_tokens, cron="17 3 * * *", timeout=300, retries=3)],
        startup=startup,
        shutdown=shutdown,
        concurrency=10,
    )
