"""Vote events in a big room: each flush carries fewer questions, and every waiting question still goes out.

The coalescer runs against the real Redis (its gates and locks); the flush records what it would
publish instead of reading PostgreSQL, because what is under test is which questions one flush
may carry (`server.qa.votes.batch_for`, `limit_by_room_size`), not the vote statement (the exact
final counts are tests/qa/test_votes.py's).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from redis.asyncio import Redis

from server.coalesce import Coalescer, Limit
from server.qa.votes import BATCH, WINDOW_S, batch_for, limit_by_room_size
from server.rooms import meeting_room
from tests.support import ServiceUrls, eventually


class Recorder:
    """A flush that keeps what it was given, in order."""

    def __init__(self) -> None:
        self.batches: list[list[uuid.UUID]] = []

    async def __call__(self, meeting: uuid.UUID, questions: list[uuid.UUID], in_time: Callable[[], bool]) -> bool:
        self.batches.append(questions)
        return True

    @property
    def items(self) -> list[uuid.UUID]:
        return [q for batch in self.batches for q in batch]


def coalescer(redis: Redis, prefix: str, flush: Recorder, limit: Limit | None) -> Coalescer:
    return Coalescer(redis, prefix, "votes", WINDOW_S, flush, batch=BATCH, limit=limit)


def test_the_batch_shrinks_with_the_room_and_never_reaches_zero() -> None:
    assert batch_for(0) == batch_for(50) == batch_for(500) == BATCH
    assert batch_for(1_000) == 10
    assert batch_for(5_000) == 2
    assert batch_for(1_000_000) == 1


async def test_a_flush_into_a_town_hall_carries_two_questions_and_all_of_them_follow(
    services: ServiceUrls, redis_prefix: str
) -> None:
    asked: list[str] = []

    async def members(room: str) -> int:
        asked.append(room)
        return 5_000

    flushed = Recorder()
    redis = Redis.from_url(services.redis_url)
    votes = coalescer(redis, redis_prefix, flushed, limit_by_room_size(members, max_age_s=60))
    meeting, questions = uuid.uuid4(), [uuid.uuid4() for _ in range(7)]
    try:
        for question in questions:
            votes.touch(meeting, question)
        await eventually(lambda: len(flushed.items) == len(questions), timeout=5)
        assert [len(batch) for batch in flushed.batches] == [2, 2, 2, 1], "oldest first, two per window"
        assert flushed.items == questions
        assert asked == [meeting_room(meeting)], "the public room's size, read once while it is fresh"
    finally:
        await votes.close()
        await redis.aclose()


async def test_questions_another_process_just_published_do_not_use_up_the_budget(
    services: ServiceUrls, redis_prefix: str
) -> None:
    async def two(meeting: uuid.UUID) -> int:
        return 2

    meeting, questions = uuid.uuid4(), [uuid.uuid4() for _ in range(4)]
    redis = Redis.from_url(services.redis_url)
    other, here = Recorder(), Recorder()
    elsewhere = coalescer(redis, redis_prefix, other, None)
    votes = coalescer(redis, redis_prefix, here, two)
    try:
        for question in questions[:2]:
            elsewhere.touch(meeting, question)  # published there: gated here for one window
        await eventually(lambda: len(other.items) == 2, timeout=5)
        for question in questions:
            votes.touch(meeting, question)
        await eventually(lambda: len(here.batches) >= 1, timeout=5)
        assert here.batches[0] == questions[2:], "the two free questions go now, not two gated ones"
        await eventually(lambda: sorted(map(str, here.items)) == sorted(map(str, questions)), timeout=5)
    finally:
        await votes.close()
        await elsewhere.close()
        await redis.aclose()


async def test_without_a_count_a_flush_carries_the_full_batch(services: ServiceUrls, redis_prefix: str) -> None:
    async def broken(meeting: uuid.UUID) -> int:
        raise ConnectionError("presence is unreachable")

    flushed = Recorder()
    redis = Redis.from_url(services.redis_url)
    votes = coalescer(redis, redis_prefix, flushed, broken)
    try:
        for _ in range(BATCH + 1):
            votes.touch(uuid.UUID(int=1), uuid.uuid4())
        await eventually(lambda: len(flushed.batches) == 2, timeout=5)
        assert [len(batch) for batch in flushed.batches] == [BATCH, 1]
    finally:
        await votes.close()
        await redis.aclose()
