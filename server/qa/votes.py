"""`question.votes` coalescing: at most one event per question per 200 ms, ending on the exact count.

Each process marks a question dirty when one of its votes commits. One flush loop per meeting
wakes every 200 ms and publishes the counts of at most `BATCH` dirty questions, oldest first, so
a town hall with hundreds of questions being voted on sends a bounded number of vote events
per second (each question's window simply grows; SPEC sets only the minimum spacing).

Across processes, a question's flush holds a Redis lock and then closes a 200 ms gate that
every process respects; a flush reads the count from PostgreSQL after taking the lock, and
publishes only while the lock is surely still its own (an overloaded process gives up and
retries in the next window).
Flushes of one question are therefore serialised everywhere and each reads the count after
its own votes committed, so the last `question.votes` always carries the final count.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from redis.asyncio import Redis

from channels.seams import Publisher
from server.db import Database
from server.qa.frames import QuestionVotes
from server.rooms import meeting_room, moderation_room

log = logging.getLogger("roomcast.qa.votes")

WINDOW_S = 0.2
LOCK_MS = 10_000
"""A flush that crashed holds its questions this long; a live one publishes only in the first half."""
BATCH = 20
"""Vote events per meeting per window per process: 100 a second at most."""

# KEYS: gate and lock key of each question, in pairs. ARGV[1]: this flush's token, ARGV[2]: lock ms.
# Returns the 1-based indexes of the questions this flush may publish now.
_ACQUIRE = """
local granted = {}
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 0 and redis.call('SET', KEYS[i + 1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    table.insert(granted, (i + 1) / 2)
  end
end
return granted
"""

# KEYS: gate and lock key of each published question. ARGV[1]: token, ARGV[2]: window ms.
_RELEASE = """
for i = 1, #KEYS, 2 do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[2])
  if redis.call('GET', KEYS[i + 1]) == ARGV[1] then redis.call('DEL', KEYS[i + 1]) end
end
return 1
"""


class VoteCoalescer:
    def __init__(self, db: Database, redis: Redis, broker: Publisher, key_prefix: str) -> None:
        self._db = db
        self._broker = broker
        self._prefix = key_prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._dirty: dict[uuid.UUID, dict[uuid.UUID, None]] = {}  # meeting -> questions, oldest first
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    def touch(self, meeting_id: uuid.UUID, question_id: uuid.UUID) -> None:
        """A vote on `question_id` committed in this process: make sure an event follows."""
        self._dirty.setdefault(meeting_id, {})[question_id] = None
        if meeting_id not in self._tasks:
            self._tasks[meeting_id] = asyncio.create_task(self._run(meeting_id))

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, meeting_id: uuid.UUID) -> None:
        try:
            while self._dirty.get(meeting_id):
                try:
                    await self._flush(meeting_id)
                except Exception:
                    log.exception("qa.votes.flush_failed", extra={"meeting_id": str(meeting_id)})
                await asyncio.sleep(WINDOW_S)
        finally:
            self._tasks.pop(meeting_id, None)
            if self._dirty.get(meeting_id):  # touched while the loop was ending
                self._tasks[meeting_id] = asyncio.create_task(self._run(meeting_id))
            else:
                self._dirty.pop(meeting_id, None)

    async def _flush(self, meeting_id: uuid.UUID) -> None:
        dirty = self._dirty[meeting_id]
        candidates = list(dirty)[:BATCH]
        token = uuid.uuid4().hex
        keys = [key for qid in candidates for key in (self._key("votes-gate", qid), self._key("votes-lock", qid))]
        locked_until = time.monotonic() + LOCK_MS / 2000
        granted = [candidates[i - 1] for i in await self._acquire(keys=keys, args=[token, LOCK_MS])]
        if not granted:
            return
        for question_id in granted:  # cleared before reading, so a vote after the read marks it again
            dirty.pop(question_id, None)
        try:
            async with self._db.pool.acquire() as connection:
                rows = await connection.fetch("SELECT id, votes FROM questions WHERE id = ANY($1::uuid[])", granted)
            if time.monotonic() > locked_until:
                # so slow (an overloaded process) that the lock may have expired and another process
                # published since: publishing now could break the 200 ms spacing; the next window retries
                log.warning("qa.votes.flush_too_slow", extra={"meeting_id": str(meeting_id), "questions": len(rows)})
                for question_id in granted:
                    dirty[question_id] = None
                return
            await asyncio.gather(
                *(
                    self._broker.publish(QuestionVotes(room=room, question_id=str(row["id"]), votes=row["votes"]))
                    for row in rows  # a deleted question has no row: question.removed already said so
                    for room in (meeting_room(meeting_id), moderation_room(meeting_id))
                )
            )
        except BaseException:
            for question_id in granted:
                dirty[question_id] = None  # try again next window
            raise
        finally:
            released = [key for qid in granted for key in (self._key("votes-gate", qid), self._key("votes-lock", qid))]
            await self._release(keys=released, args=[token, int(WINDOW_S * 1000)])

    def _key(self, kind: str, question_id: uuid.UUID) -> str:
        return f"{self._prefix}:{kind}:{question_id}"
