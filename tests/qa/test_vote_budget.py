"""Vote events in a big room: each flush carries fewer questions, and every question still ends exact.

The coalescer runs against the real Redis (its gates and locks); the flush records what it would
publish instead of reading PostgreSQL, because what is under test is which questions one flush
may carry (`server.qa.votes.batch_for`), not the vote statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from redis.asyncio import Redis

from server.coalesce import Coalescer
from server.qa.votes import BATCH, WINDOW_S, batch_for
from tests.support import ServiceUrls, eventually


def test_the_batch_shrinks_with_the_room_and_never_reaches_zero() -> None:
    assert batch_for(0) == batch_for(50) == batch_for(500) == BATCH
    assert batch_for(1_000) == 10
    assert batch_for(5_000) == 2
    assert batch_for(1_000_000) == 1


async def test_a_flush_into_a_town_hall_carries_two_questions_and_all_of_them_follow(
    services: ServiceUrls, redis_prefix: str
) -> None:
    flushed: list[list[uuid.UUID]] = []

    async def flush(meeting: uuid.UUID, questions: list[uuid.UUID], in_time: Callable[[], bool]) -> bool:
        flushed.append(questions)
        return True

    async def town_hall(meeting: uuid.UUID) -> int:
        return batch_for(5_000)

    redis = Redis.from_url(services.redis_url)
    coalescer = Coalescer(redis, redis_prefix, "votes", WINDOW_S, flush, batch=BATCH, limit=town_hall)
    meeting, questions = uuid.uuid4(), [uuid.uuid4() for _ in range(7)]
    try:
        for question in questions:
            coalescer.touch(meeting, question)
        await eventually(lambda: sum(len(batch) for batch in flushed) == len(questions), timeout=5)
        assert [len(batch) for batch in flushed] == [2, 2, 2, 1], "oldest first, two per window"
        assert [q for batch in flushed for q in batch] == questions
    finally:
        await coalescer.close()
        await redis.aclose()


async def test_without_a_count_a_flush_carries_the_full_batch(services: ServiceUrls, redis_prefix: str) -> None:
    flushed: list[list[uuid.UUID]] = []

    async def flush(meeting: uuid.UUID, questions: list[uuid.UUID], in_time: Callable[[], bool]) -> bool:
        flushed.append(questions)
        return True

    async def broken(meeting: uuid.UUID) -> int:
        raise ConnectionError("presence is unreachable")

    redis = Redis.from_url(services.redis_url)
    coalescer = Coalescer(redis, redis_prefix, "votes", WINDOW_S, flush, batch=BATCH, limit=broken)
    try:
        for _ in range(BATCH + 1):
            coalescer.touch(uuid.UUID(int=1), uuid.uuid4())
        await eventually(lambda: len(flushed) == 2, timeout=5)
        assert [len(batch) for batch in flushed] == [BATCH, 1]
    finally:
        await coalescer.close()
        await redis.aclose()
