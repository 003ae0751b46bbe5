"""What an ask costs in statements: one into a meeting this process has seen, and a muted asker's refusal
leaves that for everyone else (server.qa.service `ask`, `AskContexts`), against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from channels.protocol import ErrorCode, FrameError
from server.auth.tables import User
from server.db import Database
from server.meetings.service import insert_meeting
from server.qa.service import AskContexts, ask


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=1)  # one connection: every statement is logged
    await database.start()
    yield database
    await database.close()


async def test_a_known_meeting_takes_one_statement_and_a_muted_asker_does_not_cost_the_others_theirs(
    database: Database,
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    for user, name in ((alice, "Alice"), (bob, "Bob")):
        await User.insert(User(id=user, email=f"{user}@example.com", display_name=name))
    meeting = uuid.UUID(str((await insert_meeting(owner_id=alice, title="Town hall", status="live")).id))
    statements: list[str] = []
    async with database.pool.acquire() as connection:
        connection.add_query_logger(lambda record: statements.append(record.query))

    def questions_statements() -> int:
        return sum("questions" in s or "FROM meetings" in s for s in statements)

    contexts = AskContexts()
    pool = database.pool
    await ask(pool, meeting, alice, "First", anonymous=False, client_id=None, contexts=contexts)
    assert questions_statements() == 2, "a meeting not seen yet: its state, then the insert"
    statements.clear()
    await ask(pool, meeting, alice, "Second", anonymous=False, client_id=None, contexts=contexts)
    assert questions_statements() == 1, statements

    await pool.execute('INSERT INTO mutes (meeting, "user") VALUES ($1, $2)', meeting, bob)
    statements.clear()
    with pytest.raises(FrameError) as refused:
        await ask(pool, meeting, bob, "Muted?", anonymous=False, client_id=None, contexts=contexts)
    assert refused.value.code == ErrorCode.FORBIDDEN
    assert questions_statements() == 1, "the refusal is read off the one statement"
    statements.clear()
    await ask(pool, meeting, alice, "Third", anonymous=False, client_id=None, contexts=contexts)
    assert questions_statements() == 1, "the meeting did not change: Alice's next ask is still one statement"
