"""An ask checks its rules against the meeting as the process last read it, then stores the question
in one statement that re-reads the meeting (server.qa.service `AskContexts`). These tests change
the meeting behind the servers' backs (plain SQL, no cache to invalidate) between asks on the
same socket: every change applies to the very next ask, and asks refused for it use up nothing.
"""

from __future__ import annotations

import uuid

from tests.qa.conftest import Room, ask


async def test_settings_changed_in_the_database_apply_to_the_next_ask(room: Room) -> None:
    _, alice = await room.participant("Alice")
    first = await alice.request(ask(room.public, "Warm the servers' view of the meeting"))
    assert first["type"] == "reply" and first["data"]["question"]["status"] == "live", first

    await room.settings(moderation="pre")
    held = await alice.request(ask(room.public, "Held for a moderator?"))
    assert held["data"]["question"]["status"] == "pending", held

    await room.settings(anonymous_questions=False, blocked_words=["lisbon"])
    refused = await alice.request(ask(room.public, "Anonymous now?", anonymous=True))
    assert refused["code"] == "forbidden", refused
    flagged = await alice.request(ask(room.public, "What about Lisbon?"))
    assert flagged["data"]["question"]["flagged"] is True, flagged

    await room.settings(max_question_length=20)
    too_long = await alice.request(ask(room.public, "This question is longer than twenty characters"))
    assert too_long["code"] == "bad_request", too_long

    await room.sql(
        'INSERT INTO mutes (meeting, "user") SELECT $1, $2', uuid.UUID(room.meeting_id), uuid.UUID(alice_id(first))
    )
    assert (await alice.request(ask(room.public, "Muted?")))["code"] == "forbidden"
    await room.sql("DELETE FROM mutes WHERE meeting = $1", uuid.UUID(room.meeting_id))

    # three asks stored so far; the refused ones used up nothing of the five per minute
    for n in range(2):
        assert (await alice.request(ask(room.public, f"Fine {n}")))["type"] == "reply"
    assert (await alice.request(ask(room.public, "One too many")))["code"] == "rate_limited"


async def test_a_rule_relaxed_in_the_database_admits_the_next_ask(room: Room) -> None:
    """A refusal by the settings this process last read is checked against what is stored, so it heals."""
    await room.settings(anonymous_questions=False, max_question_length=20)
    _, alice = await room.participant("Alice")
    assert (await alice.request(ask(room.public, "Warm it up")))["type"] == "reply"
    assert (await alice.request(ask(room.public, "Anonymous?", anonymous=True)))["code"] == "forbidden"

    await room.settings(anonymous_questions=True, max_question_length=200)
    anonymous = await alice.request(ask(room.public, "Anonymous now?", anonymous=True))
    assert anonymous["type"] == "reply" and anonymous["data"]["question"]["anonymous"] is True, anonymous
    longer = await alice.request(ask(room.public, "A question longer than twenty characters"))
    assert longer["type"] == "reply", longer


async def test_an_ended_meeting_refuses_the_next_ask(room: Room) -> None:
    _, alice = await room.participant("Alice")
    assert (await alice.request(ask(room.public, "Before the end")))["type"] == "reply"
    await room.sql("UPDATE meetings SET status = 'ended' WHERE id = $1", uuid.UUID(room.meeting_id))
    assert (await alice.request(ask(room.public, "After the end")))["code"] == "conflict"
    rows = await room.sql("SELECT count(*) AS n FROM questions WHERE meeting = $1", uuid.UUID(room.meeting_id))
    assert rows[0]["n"] == 1


async def test_a_repeated_client_id_answers_with_the_first_question(room: Room) -> None:
    _, alice = await room.participant("Alice")
    first = await alice.request(ask(room.public, "Once", client_id="c-1"))
    again = await alice.request(ask(room.public, "Once, sent again", client_id="c-1"))
    assert again["data"]["question"]["id"] == first["data"]["question"]["id"]
    assert again["data"]["question"]["text"] == "Once"


def alice_id(reply: dict[str, object]) -> str:
    question = reply["data"]["question"]  # type: ignore[index]
    return str(question["author"]["id"])  # type: ignore[index]
