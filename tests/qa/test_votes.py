"""Votes: one per user, idempotent, withdrawable, exact under concurrency, coalesced events."""

from __future__ import annotations

import asyncio

from tests.qa.conftest import Room, ask, moderate, on
from tests.support import eventually

VOTERS = 50


async def test_votes_are_idempotent_and_withdrawable(room: Room) -> None:
    _, alice = await room.participant("Alice")
    _, bob = await room.participant("Bob")
    question = (await alice.request(ask(room.public, "Vote for me")))["data"]["question"]
    vote = on("vote", room.public, question["id"], up=True)
    assert (await bob.request(dict(vote)))["data"] == {"question_id": question["id"], "votes": 1}
    assert (await bob.request(dict(vote)))["data"]["votes"] == 1, "a second up-vote changes nothing"
    assert (await bob.request({**vote, "up": False}))["data"]["votes"] == 0
    assert (await bob.request({**vote, "up": False}))["data"]["votes"] == 0
    await eventually(lambda: [e["votes"] for e in alice.events(room.public, "question.votes")][-1:] == [0], timeout=3)


async def test_voting_on_a_pending_question_is_a_conflict(room: Room) -> None:
    await room.settings(moderation="pre")
    _, alice = await room.participant("Alice")
    question = (await alice.request(ask(room.public, "Held")))["data"]["question"]
    answer = await alice.request(on("vote", room.public, question["id"], up=True))
    assert answer["code"] == "conflict"
    missing = await alice.request(on("vote", room.public, "00000000-0000-4000-8000-000000000000", up=True))
    assert missing["code"] == "not_found"


async def test_fifty_concurrent_voters_on_both_servers_end_at_the_exact_count(room: Room) -> None:
    _, asker = await room.participant("Asker", server=0)
    watchers = [asker, (await room.participant("Watcher", server=1))[1], await room.moderator(server=1)]
    question = (await asker.request(ask(room.public, "Popular question")))["data"]["question"]
    voters = [await room.participant(f"Voter {n}", rooms=()) for n in range(VOTERS)]
    frame = on("vote", room.public, question["id"], up=True)
    started = asyncio.get_running_loop().time()
    answers = await asyncio.gather(*(ws.request(dict(frame)) for _, ws in voters))
    elapsed = asyncio.get_running_loop().time() - started
    assert all(answer["type"] == "reply" for answer in answers)
    assert max(answer["data"]["votes"] for answer in answers) == VOTERS

    rows = await room.sql("SELECT votes FROM questions WHERE id = $1", question["id"])
    assert rows[0]["votes"] == VOTERS

    async def everyone_sees_the_final_count() -> bool:
        return all(
            ws.events(room.public, "question.votes") and ws.events(room.public, "question.votes")[-1]["votes"] == VOTERS
            for ws in watchers
        )

    await eventually(everyone_sees_the_final_count, timeout=5)
    events = watchers[1].events(room.public, "question.votes")
    # coalesced: at most one event per 200 ms window (+1 for the window edges)
    assert len(events) <= int(elapsed / 0.2) + 3, (len(events), elapsed)
    assert len({e["seq"] for e in events}) == len(events)


async def test_merge_moves_voters_and_author_once_each(room: Room) -> None:
    asker, alice = await room.participant("Alice")
    await alice.join(f"user:{asker.id}")
    _, bob = await room.participant("Bob")
    _, carol = await room.participant("Carol")
    moderator = await room.moderator()
    target = (await bob.request(ask(room.public, "How do refunds work?")))["data"]["question"]
    duplicate = (await alice.request(ask(room.public, "How do refunds work exactly?")))["data"]["question"]
    await carol.request(on("vote", room.public, duplicate["id"], up=True))
    await carol.request(on("vote", room.public, target["id"], up=True))  # Carol counts once

    merged = await moderator.request(
        {"type": "merge", "room": room.moderation, "question_id": duplicate["id"], "into_id": target["id"]}
    )
    assert merged["type"] == "reply", merged
    assert merged["data"]["question"]["votes"] == 2  # Carol and Alice (the duplicate's author)
    removed = await bob.wait_for(lambda f: f["type"] == "question.removed" and f["question_id"] == duplicate["id"])
    assert removed["merged_into"] == target["id"]
    updated = await bob.wait_for(lambda f: f["type"] == "question.updated" and f["question"]["id"] == target["id"])
    assert updated["question"]["votes"] == 2
    told = await alice.wait_for(lambda f: f["type"] == "question.updated" and f["room"] == f"user:{asker.id}")
    assert told["question"]["merged_into"] == target["id"]
    assert told["question"]["dismiss_reason"] == "duplicate"

    def merge(question_id: str, into_id: str) -> dict[str, str]:
        return {"type": "merge", "room": room.moderation, "question_id": question_id, "into_id": into_id}

    assert (await moderator.request(merge(target["id"], target["id"])))["code"] == "bad_request"
    assert (await moderator.request(merge(target["id"], duplicate["id"])))["code"] == "conflict"
    assert (await alice.request(merge(duplicate["id"], target["id"])))["code"] == "forbidden"


async def test_a_question_with_twelve_thousand_voters_merges(room: Room) -> None:
    """The voters move inside PostgreSQL: one parameter each would pass asyncpg's limit of 32,767."""
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    target = (await alice.request(ask(room.public, "Is there a town hall recording?")))["data"]["question"]
    duplicate = (await alice.request(ask(room.public, "Will the town hall be recorded?")))["data"]["question"]
    await room.sql(
        """WITH voters AS (
               INSERT INTO users (id, display_name, guest_meeting_id)
               SELECT gen_random_uuid(), 'Voter', $1::uuid FROM generate_series(1, 12000) RETURNING id)
           INSERT INTO votes (question, "user") SELECT $2::uuid, id FROM voters""",
        room.meeting_id,
        duplicate["id"],
    )
    merged = await moderator.request(
        {"type": "merge", "room": room.moderation, "question_id": duplicate["id"], "into_id": target["id"]}
    )
    assert merged["type"] == "reply", merged
    assert merged["data"]["question"]["votes"] == 12_001  # the voters and the duplicate's author
    [row] = await room.sql("SELECT votes FROM questions WHERE id = $1", target["id"])
    assert row["votes"] == 12_001


async def test_similar_offers_close_questions_the_room_may_see(room: Room) -> None:
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    close = (await alice.request(ask(room.public, "When is the next product release?")))["data"]["question"]
    await alice.request(ask(room.public, "Where is the coffee machine?"))
    hidden = (await alice.request(ask(room.public, "When is the next product release date?")))["data"]["question"]
    await moderator.request(moderate(room.moderation, hidden["id"], "dismiss"))

    answer = await alice.request({"type": "similar", "room": room.public, "text": "next product release"})
    items = answer["data"]["items"]
    assert [item["question_id"] for item in items] == [close["id"]]
    assert set(items[0]) == {"question_id", "text", "votes", "score"}
    assert 0 < items[0]["score"] <= 1
    for text in ("\x00", "  ", "x" * 2001):  # PostgreSQL takes no NUL: refused like a question's text
        refused = await alice.request({"type": "similar", "room": room.public, "text": text})
        assert refused["code"] == "bad_request", (text, refused)


async def test_blocked_words_hold_a_question_for_moderation(room: Room) -> None:
    await room.settings(blocked_words=["Crap", "café"])
    asker, alice = await room.participant("Alice")
    _, bob = await room.participant("Bob")
    moderator = await room.moderator()
    held = (await alice.request(ask(room.public, "Why is the CAFE closed?")))["data"]["question"]
    assert (held["status"], held["flagged"]) == ("pending", True)
    flagged = await moderator.wait_for(lambda f: f["type"] == "question.created" and f["room"] == room.moderation)
    assert flagged["question"]["flagged_words"] == ["café"]
    fine = (await alice.request(ask(room.public, "Crappy weather, right?")))["data"]["question"]
    assert fine["status"] == "live"
    await bob.wait_for(lambda f: f["type"] == "question.created")
    assert [e["question"]["id"] for e in bob.events(room.public, "question.created")] == [fine["id"]]
    del asker


async def test_muted_authors_cannot_ask_or_vote_and_stay_anonymous(room: Room) -> None:
    _, alice = await room.participant("Alice")
    _, bob = await room.participant("Bob")
    moderator = await room.moderator()
    question = (await alice.request(ask(room.public, "Spam spam", anonymous=True)))["data"]["question"]
    muted = await moderator.request(moderate(room.moderation, question["id"], "mute_author"))
    assert muted["type"] == "reply"
    assert muted["data"]["question"]["author"] is None
    refused = await alice.request(ask(room.public, "More spam"))
    assert refused["code"] == "forbidden"
    assert "muted" in refused["message"]
    other = (await bob.request(ask(room.public, "Legit")))["data"]["question"]
    assert (await alice.request(on("vote", room.public, other["id"], up=True)))["code"] == "forbidden"
    await moderator.request(moderate(room.moderation, question["id"], "unmute_author"))
    assert (await alice.request(ask(room.public, "Sorry")))["type"] == "reply"
