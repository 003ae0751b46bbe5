"""`server.db.on_connection`: Piccolo queries run on a connection the caller holds, inside its transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from server.auth.tables import User
from server.db import Database, on_connection
from server.meetings.service import insert_meeting
from server.meetings.tables import Meeting as MeetingTable


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, max_size=2)
    await database.start()
    yield database
    await database.close()


async def test_piccolo_queries_run_on_the_held_connection_and_in_its_transaction(database: Database) -> None:
    user_id = uuid.uuid4()
    async with database.pool.acquire() as held, on_connection(held):
        pid = await held.fetchval("SELECT pg_backend_pid()")
        assert await User.raw("SELECT pg_backend_pid() AS pid") == [{"pid": pid}]
        async with held.transaction():
            await User.insert(User(id=user_id, email=f"{user_id}@example.com", display_name="Inside"))
            assert await User.exists().where(User.id == user_id)
            async with database.pool.acquire() as other:  # the pool's second connection: not committed yet
                assert await other.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id) == 0
    assert await User.exists().where(User.id == user_id)  # committed; and outside the block, on the pool again


async def test_a_failed_block_rolls_back_what_piccolo_wrote(database: Database) -> None:
    user_id = uuid.uuid4()

    async def insert_then_fail() -> None:
        async with database.pool.acquire() as held, on_connection(held), held.transaction():
            await User.insert(User(id=user_id, email=f"{user_id}@example.com", display_name="Gone"))
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert not await User.exists().where(User.id == user_id)


async def test_a_meeting_inserted_on_a_held_connection_joins_its_transaction(database: Database) -> None:
    """`insert_meeting` takes a savepoint per attempt; under `on_connection` that is the held connection's."""
    owner = uuid.uuid4()
    await User.insert(User(id=owner, email=f"{owner}@example.com", display_name="Owner"))

    async def insert_then_fail() -> None:
        async with database.pool.acquire() as held, on_connection(held), held.transaction():
            meeting = await insert_meeting(owner_id=owner, title="Held")
            assert await MeetingTable.exists().where(MeetingTable.id == uuid.UUID(str(meeting.id)))
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await insert_then_fail()
    assert await MeetingTable.count().where(MeetingTable.owner == owner) == 0
