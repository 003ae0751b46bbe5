"""Two tests that write the same rows and the same Redis keys pass in either order."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from server.db import Database
from tests.support import ServiceUrls

EMAIL = "same@example.com"


@pytest.mark.parametrize("run", ["first", "second"])
async def test_same_rows_and_keys(run: str, database_url: str, redis_prefix: str, services: ServiceUrls) -> None:
    database = Database(database_url)
    await database.start()
    redis = aioredis.Redis.from_url(services.redis_url)
    try:
        async with database.pool.acquire() as connection:
            assert await connection.fetchval("SELECT count(*) FROM users") == 0
            await connection.execute(
                "INSERT INTO users (id, email, display_name) VALUES (gen_random_uuid(), $1, 'Same')", EMAIL
            )
        key = f"{redis_prefix}:counter"
        assert await redis.incr(key) == 1
    finally:
        await redis.aclose()
        await database.close()
