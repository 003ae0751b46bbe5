"""`moderate` is a table: every action the protocol allows has exactly one transition; questions have one shape."""

from __future__ import annotations

import uuid
from typing import get_args

from server.db import Database
from server.qa.frames import ModerateAction
from server.qa.service import QUESTION_FIELDS, fetch_question
from server.qa.tables import Question
from server.qa.transitions import TRANSITIONS
from tests.qa.conftest import Room, ask


def test_every_moderate_action_has_one_transition() -> None:
    assert set(TRANSITIONS) == set(get_args(ModerateAction))
    for action, transition in TRANSITIONS.items():
        assert transition.assignments is not None or transition.step.__name__ != "_no_step", action


async def test_hand_written_and_piccolo_questions_have_one_shape(room: Room) -> None:
    """`QUESTION_COLUMNS` (hand-written statements) and `QUESTION_FIELDS` (Piccolo) read the same question alike."""
    _, alice = await room.participant("Alice")
    asked = (await alice.request(ask(room.public, "One shape?")))["data"]["question"]
    meeting_id, question_id = uuid.UUID(room.meeting_id), uuid.UUID(asked["id"])
    database = Database(room.pair.settings.database_url or "", max_size=1)
    await database.start()
    try:
        async with database.pool.acquire() as connection:
            by_hand = await fetch_question(connection, meeting_id, question_id)
        through_piccolo = await Question.select(*QUESTION_FIELDS).where(Question.id == question_id).first()
    finally:
        await database.close()
    assert by_hand == through_piccolo
    assert by_hand["author_name"] == "Alice"
