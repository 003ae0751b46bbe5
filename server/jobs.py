"""SAQ infrastructure shared by the web process and the worker: the job context, the queue and its name.

Features enqueue through `make_queue`; `server.worker` only lists each feature's jobs and runs
them. Nothing here imports a feature, so a feature's jobs module can import this one.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq import Job
from saq.queue.redis import RedisQueue
from saq.types import Context as SaqContext

from server.services import Services
from server.settings import Settings

log = logging.getLogger("roomcast.worker")


class Context(SaqContext, total=False):
    """What every job receives: SAQ's own fields plus this process's services."""

    services: Services


def queue_name(settings: Settings) -> str:
    """The job queue's name carries the Redis prefix, so deployments sharing a Redis stay apart."""
    return f"{settings.redis_prefix}:jobs"


DEQUEUE_BACKOFF_S = 1.0


class JobQueue(RedisQueue):
    """SAQ's Redis queue, pausing after a failed dequeue.

    SAQ's worker swallows a dequeue that raises and asks again at once: with Redis down that
    loop took a whole core, starving the web server the in-process worker shares a loop with.
    """

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Job | None:  # noqa: ASYNC109
        try:
            return await super().dequeue(timeout, poll_interval)
        except RedisError as err:
            log.warning("worker.dequeue_failed", extra={"error": type(err).__name__})
            await asyncio.sleep(DEQUEUE_BACKOFF_S)
            return None


def make_queue(settings: Settings, redis: Redis) -> RedisQueue:
    return JobQueue(redis, name=queue_name(settings))
