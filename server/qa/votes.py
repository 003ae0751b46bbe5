"""`question.votes` coalescing: at most one event per question per 200 ms, ending on the exact count.

The mechanism (a flush loop per meeting, a Redis gate and lock per question, publishing only while
the lock is surely held) is `server.coalesce.Coalescer`, shared with `poll.results`; this module
says what a flush reads and publishes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from redis.asyncio import Redis

from channels.seams import Publisher
from server.coalesce import Coalescer
from server.db import Database
from server.qa.frames import QuestionVotes
from server.rooms import meeting_room, moderation_room

WINDOW_S = 0.2
BATCH = 20
"""Vote events per meeting per window per process: 100 a second at most."""


class VoteCoalescer:
    def __init__(self, db: Database, redis: Redis, broker: Publisher, key_prefix: str) -> None:
        self._db = db
        self._broker = broker
        self._coalescer = Coalescer(redis, key_prefix, "votes", WINDOW_S, self._flush, batch=BATCH)

    def touch(self, meeting_id: uuid.UUID, question_id: uuid.UUID) -> None:
        """A vote on `question_id` committed in this process: make sure an event follows."""
        self._coalescer.touch(meeting_id, question_id)

    async def close(self) -> None:
        await self._coalescer.close()

    async def _flush(self, meeting_id: uuid.UUID, questions: list[uuid.UUID], in_time: Callable[[], bool]) -> bool:
        async with self._db.pool.acquire() as connection:
            rows = await connection.fetch("SELECT id, votes FROM questions WHERE id = ANY($1::uuid[])", questions)
        if not in_time():
            return False
        rooms = (meeting_room(meeting_id), moderation_room(meeting_id))
        await self._broker.publish_many(
            [
                QuestionVotes(room=room, question_id=str(row["id"]), votes=row["votes"])
                for row in rows  # a deleted question has no row: question.removed already said so
                for room in rooms
            ]
        )  # both rooms share the meeting's shard: one round trip for the whole batch
        return True
