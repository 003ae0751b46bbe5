"""The nightly purge of refresh tokens: only those that expired more than a day ago go, and it says how many."""

from __future__ import annotations

import asyncpg

from server.db import Database
from server.worker import purge_expired_refresh_tokens


async def test_refresh_tokens_expired_over_a_day_ago_are_purged_and_counted(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        user = await connection.fetchval(
            "INSERT INTO users (id, email, display_name)"
            " VALUES (gen_random_uuid(), 'ada@example.org', 'Ada') RETURNING id"
        )
        await connection.execute(
            """INSERT INTO refresh_tokens (id, "user", family_id, token_hash, expires_at)
               SELECT gen_random_uuid(), $1, gen_random_uuid(), md5(n::text), now() + e
               FROM unnest(ARRAY[interval '-3 days', interval '-2 days', interval '-1 hour', interval '1 day'])
                    WITH ORDINALITY AS t(e, n)""",
            user,
        )
        db = Database(database_url)
        await db.start()
        try:
            assert await purge_expired_refresh_tokens({}) == 2  # type: ignore[typeddict-item]
            assert await purge_expired_refresh_tokens({}) == 0  # type: ignore[typeddict-item]
        finally:
            await db.close()
        assert await connection.fetchval("SELECT count(*) FROM refresh_tokens") == 2
    finally:
        await connection.close()
