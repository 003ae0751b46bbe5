"""`question.votes` coalescing: at most one event per question per 200 ms, ending on the exact count.

Each process marks a question dirty when one of its votes commits and flushes it soon after.
A flush takes a short Redis lock for the question, reads the count from PostgreSQL, publishes,
and then closes a 200 ms gate that every process respects. Because flushes of one question are
serialised across processes and each reads the count after its own votes committed, the last
event published always carries the final count, and no window carries more than one event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from redis.asyncio import Redis

from channels.broker import Broker
from server.db import Database
from server.qa.frames import QuestionVotes
from server.qa.publish import moderation_room, public_room

log = logging.getLogger("roomcast.qa.votes")

WINDOW_MS = 200
LOCK_MS = 2000


class VoteCoalescer:
    def __init__(self, db: Database, redis: Redis, broker: Broker, key_prefix: str) -> None:
        self._db = db
        self._redis = redis
        self._broker = broker
        self._prefix = key_prefix
        self._dirty: dict[uuid.UUID, uuid.UUID] = {}  # question -> meeting
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    def touch(self, meeting_id: uuid.UUID, question_id: uuid.UUID) -> None:
        """A vote on `question_id` committed in this process: make sure an event follows."""
        self._dirty[question_id] = meeting_id
        if question_id not in self._tasks:
            self._tasks[question_id] = asyncio.create_task(self._flush(question_id))

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _flush(self, question_id: uuid.UUID) -> None:
        gate = f"{self._prefix}:votes-gate:{question_id}"
        lock = f"{self._prefix}:votes-lock:{question_id}"
        token = uuid.uuid4().hex
        try:
            while question_id in self._dirty:
                wait_ms = await self._redis.pttl(gate)
                if wait_ms > 0:
                    await asyncio.sleep(wait_ms / 1000)
                    continue
                if not await self._redis.set(lock, token, px=LOCK_MS, nx=True):
                    await asyncio.sleep(0.02)
                    continue
                try:
                    meeting_id = self._dirty.pop(question_id)
                    await self._publish(meeting_id, question_id)
                    await self._redis.set(gate, "1", px=WINDOW_MS)
                finally:
                    if await self._redis.get(lock) == token.encode():
                        await self._redis.delete(lock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("qa.votes.flush_failed", extra={"question_id": str(question_id)})
        finally:
            self._tasks.pop(question_id, None)
            if question_id in self._dirty:  # touched again after the loop ended
                self._tasks[question_id] = asyncio.create_task(self._flush(question_id))

    async def _publish(self, meeting_id: uuid.UUID, question_id: uuid.UUID) -> None:
        async with self._db.pool.acquire() as connection:
            votes = await connection.fetchval("SELECT votes FROM questions WHERE id = $1", question_id)
        if votes is None:  # deleted meanwhile; question.removed said so
            return
        started = time.monotonic()
        for room in (public_room(meeting_id), moderation_room(meeting_id)):
            await self._broker.publish(QuestionVotes(room=room, question_id=str(question_id), votes=votes))
        log.debug(
            "qa.votes.published",
            extra={
                "question_id": str(question_id),
                "votes": votes,
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
