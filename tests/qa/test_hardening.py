"""Issue 16: Q&A frames that name another meeting's question, stale vote replies, closed meetings."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.qa.conftest import Room, ask, moderate, on


async def _question_in(room: Room, author_id: str, meeting_id: str, text: str) -> str:
    question_id = str(uuid.uuid4())
    await room.sql(
        "INSERT INTO questions (id, meeting, author, text, status) VALUES ($1, $2, $3, $4, 'live')",
        uuid.UUID(question_id),
        uuid.UUID(meeting_id),
        uuid.UUID(author_id),
        text,
    )
    return question_id


async def _state(room: Room, meeting_id: str) -> list[Any]:
    questions = await room.sql(
        "SELECT id, text, status, pinned, votes, answer, merged_into, dismiss_reason FROM questions "
        "WHERE meeting = $1 ORDER BY id",
        uuid.UUID(meeting_id),
    )
    votes = await room.sql(
        'SELECT v.question, v."user" FROM votes v JOIN questions q ON q.id = v.question WHERE q.meeting = $1 '
        "ORDER BY 1, 2",
        uuid.UUID(meeting_id),
    )
    mutes = await room.sql('SELECT "user" FROM mutes WHERE meeting = $1', uuid.UUID(meeting_id))
    return [[dict(r) for r in questions], [dict(r) for r in votes], [dict(r) for r in mutes]]


async def test_no_frame_naming_meeting_a_changes_a_question_of_meeting_b(room: Room) -> None:
    """PITFALLS 21: every frame that takes an id, sent to meeting A's rooms with meeting B's ids."""
    world = room.pair.world
    alice, alice_ws = await room.participant("Alice")
    presenter_ws = await room.moderator()
    other_owner = await world.user("Bea")
    meeting_b = await world.meeting(other_owner, title="Meeting B")
    # Alice once had a vote and a question in B (she is not a member of B any more)
    theirs = await _question_in(room, alice.id, meeting_b, "Alice's question in B")
    target = await _question_in(room, other_owner.id, meeting_b, "Bea's question in B")
    await room.sql('INSERT INTO votes (question, "user") VALUES ($1, $2)', uuid.UUID(target), uuid.UUID(alice.id))
    await room.sql("UPDATE questions SET votes = 1 WHERE id = $1", uuid.UUID(target))
    mine = (await alice_ws.request(ask(room.public, "A question in A")))["data"]["question"]["id"]
    before = await _state(room, meeting_b)

    frames: list[tuple[Any, dict[str, Any]]] = [
        (alice_ws, on("vote", room.public, target, up=False)),
        (alice_ws, on("vote", room.public, target, up=True)),
        (alice_ws, on("edit", room.public, theirs, text="Rewritten from A")),
        (alice_ws, on("delete", room.public, theirs)),
        (presenter_ws, on("delete", room.moderation, target)),
        (presenter_ws, on("merge", room.moderation, mine, into_id=target)),
        (presenter_ws, on("merge", room.moderation, target, into_id=mine)),
    ]
    for action in ("approve", "dismiss", "pin", "unpin", "answer", "reopen", "mute_author", "unmute_author"):
        frames.append(
            (presenter_ws, moderate(room.moderation, target, action, text="x" if action == "answer" else None))
        )
    for ws, frame in frames:
        frame = {k: v for k, v in frame.items() if v is not None}
        answer = await ws.request(frame)
        assert answer["type"] == "error" and answer["code"] == "not_found", (frame, answer)
    assert await _state(room, meeting_b) == before


async def test_the_same_user_voting_from_two_processes_gets_the_committed_count(room: Room) -> None:
    """PITFALLS 22: both replies carry the count after both votes, five rounds each way."""
    person, _ = await room.participant("Alice", rooms=())
    first = await room.client(person, rooms=(), server=0)
    second = await room.client(person, rooms=(), server=1)
    question = (await first.request(ask(room.public, "Vote twice?")))["data"]["question"]["id"]
    for round_ in range(5):
        for up, expected in ((True, 1), (False, 0)):
            answers = await asyncio.gather(
                first.request(on("vote", room.public, question, up=up)),
                second.request(on("vote", room.public, question, up=up)),
            )
            assert [a["data"]["votes"] for a in answers] == [expected, expected], (round_, up, answers)


async def test_votes_and_edits_in_ended_or_cancelled_meetings_are_refused_like_asks(room: Room) -> None:
    _, alice_ws = await room.participant("Alice")
    _, bob = await room.participant("Bob")
    question = (await alice_ws.request(ask(room.public, "Before the end")))["data"]["question"]["id"]
    assert (await bob.request(on("vote", room.public, question, up=True)))["data"]["votes"] == 1
    for status in ("ended", "cancelled"):
        await room.sql("UPDATE meetings SET status = $2 WHERE id = $1", uuid.UUID(room.meeting_id), status)
        for ws, frame in (
            (bob, on("vote", room.public, question, up=False)),
            (bob, on("vote", room.public, question, up=True)),
            (alice_ws, on("edit", room.public, question, text="After the end")),
            (alice_ws, ask(room.public, "After the end")),
        ):
            answer = await ws.request(frame)
            assert answer["type"] == "error" and answer["code"] == "conflict", (status, frame, answer)
    rows = await room.sql("SELECT text, votes FROM questions WHERE id = $1", uuid.UUID(question))
    assert (rows[0]["text"], rows[0]["votes"]) == ("Before the end", 1)
