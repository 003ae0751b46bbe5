"""`roomcast seed`: a demo owner, a live meeting and a few questions, so a newcomer has something to open."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from server.settings import Settings

if TYPE_CHECKING:
    from server.db import Database

DEMO_EMAIL = "demo@roomcast.local"
DEMO_PASSWORD = "roomcast-demo"
DEMO_QUESTIONS = [
    ("Priya", "What is on the roadmap for next quarter?", 3),
    ("Tom", "Will the recordings be shared after the meeting?", 1),
    ("Ana", "How can I join the beta programme?", 0),
]
"""Asker, text and how many demo voters back it."""


async def seed_demo(settings: Settings) -> str:
    """Create the demo data once (re-running reuses it) and return what to print."""
    from server.db import Database
    from server.meetings.service import ensure_demo_meeting

    database = Database(settings.database_url or "")
    await database.start()
    try:
        meeting = await ensure_demo_meeting(database.pool, DEMO_EMAIL, DEMO_PASSWORD)
        await _demo_questions(database, meeting.id)
    finally:
        await database.close()
    return (
        f"join code: {meeting.join_code}\n"
        f"owner login: {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
        f"participant page: {settings.public_url}/m/{meeting.join_code}\n"
        f"presenter page: {settings.public_url}/present/{meeting.id}"
    )


async def _demo_questions(database: Database, meeting_id: uuid.UUID) -> None:
    """A few questions asked and upvoted by demo guests, the first time only (nothing is published)."""
    from server.qa import service

    async with database.pool.acquire() as connection:
        if await connection.fetchval("SELECT count(*) FROM questions WHERE meeting = $1", meeting_id):
            return
    voters = [await _guest(database, meeting_id, f"Voter {n}") for n in range(max(v for *_, v in DEMO_QUESTIONS))]
    for name, text, votes in DEMO_QUESTIONS:
        question, _ = await service.ask(
            database.pool, meeting_id, await _guest(database, meeting_id, name), text, anonymous=False, client_id=None
        )
        for voter in voters[:votes]:
            await service.vote(database.pool, meeting_id, question["id"], voter, True)


async def _guest(database: Database, meeting_id: uuid.UUID, name: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with database.pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO users (id, display_name, guest_meeting_id) VALUES ($1, $2, $3)", user_id, name, meeting_id
        )
    return user_id
