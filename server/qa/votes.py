"""`question.votes` coalescing: at most one event per question per 200 ms, ending on the exact count.

The mechanism (a flush loop per meeting, a Redis gate and lock per question, publishing only while
the lock is surely held) is `server.coalesce.Coalescer`, shared with `poll.results`; this module
says what a flush reads and publishes, and how many questions one flush may carry.

A vote event goes to every member of the meeting, so what it costs grows with the room: in a town
hall of 5,000 with votes spread over a few hundred questions, 20 questions per window per
process were ~250,000 frames a second of vote counts alone, three times the asks' fan-out, and
they held the asks back (median reply to an ask 0.67-1.0 s; 0.27-0.64 s with the limit below,
docs/benchmarks.md "The town hall"). So each process's vote events of one
meeting are held to `FRAMES_PER_S` delivered frames a second: rooms up to 500 members keep the
full `BATCH`, a room of 5,000 flushes 2 questions per window per process (each busy question's
count then moves every few seconds instead of every second; the last event of each is still
exact).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from channels.seams import Publisher
from server.coalesce import Coalescer, Limit
from server.db import Database
from server.qa.frames import QuestionVotes
from server.rooms import meeting_room, moderation_room

WINDOW_S = 0.2
BATCH = 20
"""Vote events per meeting per window per process: 100 a second at most."""
FRAMES_PER_S = 50_000
"""What one process's vote events of one meeting may cost in delivered frames a second (members times events)."""


def batch_for(members: int) -> int:
    """Questions one flush may publish into a meeting of `members`: the full `BATCH` up to 500 members."""
    return max(1, min(BATCH, int(FRAMES_PER_S * WINDOW_S) // max(members, 1)))


def limit_by_room_size(members: Callable[[str], Awaitable[int]], *, max_age_s: float = 1.0) -> Limit:
    """`batch_for` the meeting's public room, its size read at most once per `max_age_s` per meeting.

    A presence count walks the room's set in Redis (~1.6 ms at 5,000 members); flushes run every
    200 ms, and a room's size hardly changes in a second.
    """
    seen: dict[uuid.UUID, tuple[float, int]] = {}

    async def limit(meeting_id: uuid.UUID) -> int:
        now = time.monotonic()
        known = seen.get(meeting_id)
        if known is None or now - known[0] > max_age_s:
            if len(seen) >= 4096:  # meetings whose votes stopped: forget them all, the busy ones come back
                seen.clear()
            known = seen[meeting_id] = (now, await members(meeting_room(meeting_id)))
        return batch_for(known[1])

    return limit


class VoteCoalescer:
    def __init__(
        self,
        db: Database,
        redis: Redis,
        broker: Publisher,
        key_prefix: str,
        *,
        members: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        """`members`: how many are in a room now (presence); without it every flush may carry the full `BATCH`."""
        self._db = db
        self._broker = broker
        limit = limit_by_room_size(members) if members is not None else None
        self._coalescer = Coalescer(redis, key_prefix, "votes", WINDOW_S, self._flush, batch=BATCH, limit=limit)

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
