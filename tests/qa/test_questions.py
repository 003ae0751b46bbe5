"""Asking, moderating, editing and deleting through real sockets on two server processes."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
import pytest

from tests.helpers import API, auth_header
from tests.qa.conftest import Room, ask, moderate, on, question_events, types
from tests.support import eventually


async def test_post_moderation_question_reaches_everyone_on_both_servers(room: Room) -> None:
    _, alice = await room.participant("Alice", server=0)
    _, bob = await room.participant("Bob", server=1)
    moderator = await room.moderator(server=1)

    answer = await alice.request(ask(room.public, "  What is the roadmap?  "))
    assert answer["type"] == "reply"
    question = answer["data"]["question"]
    assert question["text"] == "What is the roadmap?"
    assert question["status"] == "live"
    assert question["author"]["display_name"] == "Alice"
    assert (question["votes"], question["pinned"], question["anonymous"]) == (0, False, False)
    assert question["created_at"].endswith("Z")
    assert question["answered_at"] is None

    seen = [
        await ws.wait_for(lambda f: f["type"] == "question.created" and f["room"] == room.public)
        for ws in (alice, bob, moderator)
    ]
    assert len({event["seq"] for event in seen}) == 1, "one event, one seq, on both servers"
    assert all(event["question"]["id"] == question["id"] for event in seen)
    mod_event = await moderator.wait_for(lambda f: f["type"] == "question.created" and f["room"] == room.moderation)
    assert mod_event["question"]["flagged"] is False


async def test_pre_moderation_never_leaks_a_pending_question(room: Room) -> None:
    await room.settings(moderation="pre")
    asker, alice = await room.participant("Alice", server=0)
    _, bob = await room.participant("Bob", server=1)
    _, carol = await room.participant("Carol", server=0)
    moderator = await room.moderator(server=1)
    await alice.join(f"user:{asker.id}")

    question = (await alice.request(ask(room.public, "Secret until approved?")))["data"]["question"]
    assert question["status"] == "pending"
    held = await moderator.wait_for(lambda f: f["type"] == "question.created" and f["room"] == room.moderation)
    assert held["question"]["status"] == "pending"
    own = await alice.wait_for(lambda f: f["type"] == "question.created" and f["room"] == f"user:{asker.id}")
    assert own["question"]["author"]["id"] == asker.id

    await asyncio.sleep(0.3)
    for ws in (alice, bob, carol):
        assert not question_events(ws, room.public), "nothing reaches the public room while pending"
    assert question["id"] not in msgspec.json.encode(bob.frames).decode()
    assert question["id"] not in msgspec.json.encode(carol.frames).decode()

    approved = await moderator.request(
        {"type": "moderate", "room": room.moderation, "question_id": question["id"], "action": "approve"}
    )
    assert approved["data"]["question"]["status"] == "live"
    for ws in (alice, bob, carol):
        created = await ws.wait_for(lambda f: f["type"] == "question.created" and f["room"] == room.public)
        assert created["question"]["id"] == question["id"]

    # a joiner's snapshot shows the approved question
    _, dave = await room.participant("Dave")
    snapshot = next(f for f in dave.frames if f["type"] == "joined")["snapshot"]
    assert [q["id"] for q in snapshot["questions"]] == [question["id"]]


@pytest.mark.parametrize(
    ("text", "why"),
    [("   ", "empty"), ("x" * 301, "limit is 300"), ("beep\x07", "control character")],
)
async def test_bad_text_is_refused_and_nothing_is_stored(room: Room, text: str, why: str) -> None:
    _, alice = await room.participant("Alice")
    answer = await alice.request(ask(room.public, text))
    assert answer["type"] == "error"
    assert answer["code"] == "bad_request"
    assert why in answer["message"]
    rows = await room.sql("SELECT count(*) AS n FROM questions WHERE meeting = $1", room.meeting_id)
    assert rows[0]["n"] == 0


async def test_max_question_length_follows_the_meeting(room: Room) -> None:
    await room.settings(max_question_length=10)
    _, alice = await room.participant("Alice")
    assert (await alice.request(ask(room.public, "0123456789")))["type"] == "reply"
    refused = await alice.request(ask(room.public, "0123456789!"))
    assert refused["code"] == "bad_request"


async def test_anonymous_questions_hide_the_author_from_everyone_but_the_author(room: Room) -> None:
    asker, alice = await room.participant("Alice", server=0)
    await alice.join(f"user:{asker.id}")
    _, bob = await room.participant("Bob", server=1)
    moderator = await room.moderator(server=0)

    reply = await alice.request(ask(room.public, "Anonymous one", anonymous=True))
    question = reply["data"]["question"]
    assert question["anonymous"] is True
    public = await bob.wait_for(lambda f: f["type"] == "question.created")
    assert public["question"]["author"] is None
    moderated = await moderator.wait_for(lambda f: f["type"] == "question.created" and f["room"] == room.moderation)
    assert moderated["question"]["author"] is None
    own = await alice.wait_for(lambda f: f["type"] == "question.created" and f["room"] == f"user:{asker.id}")
    assert own["question"]["author"]["id"] == asker.id
    assert "Alice" not in msgspec.json.encode(bob.frames + moderator.frames).decode()

    # the author still edits and deletes it
    edited = await alice.request(
        {"type": "edit", "room": room.public, "question_id": question["id"], "text": "Still anonymous"}
    )
    assert edited["data"]["question"]["text"] == "Still anonymous"
    updated = await bob.wait_for(lambda f: f["type"] == "question.updated")
    assert updated["question"]["author"] is None
    assert (await alice.request({"type": "delete", "room": room.public, "question_id": question["id"]}))[
        "type"
    ] == "reply"
    removed = await bob.wait_for(lambda f: f["type"] == "question.removed")
    assert removed["question_id"] == question["id"]


async def test_anonymous_refused_when_the_meeting_does_not_allow_it(room: Room) -> None:
    await room.settings(anonymous_questions=False)
    _, alice = await room.participant("Alice")
    answer = await alice.request(ask(room.public, "Who am I?", anonymous=True))
    assert answer["code"] == "forbidden"


async def test_same_client_id_on_both_servers_at_once_gives_one_question(room: Room) -> None:
    asker, first = await room.participant("Alice", server=0)
    second = await room.client(asker, server=1)
    _, watcher = await room.participant("Bob")
    frame = ask(room.public, "Only once please", client_id="c-123")
    answers = await asyncio.gather(first.request(dict(frame)), second.request(dict(frame)))
    ids = {answer["data"]["question"]["id"] for answer in answers}
    assert len(ids) == 1
    await watcher.wait_for(lambda f: f["type"] == "question.created")
    await asyncio.sleep(0.3)
    assert len(watcher.events(room.public, "question.created")) == 1
    rows = await room.sql("SELECT count(*) AS n FROM questions WHERE meeting = $1", room.meeting_id)
    assert rows[0]["n"] == 1


async def test_asking_is_rate_limited_per_user(room: Room) -> None:
    _, alice = await room.participant("Alice")
    for n in range(5):
        assert (await alice.request(ask(room.public, f"Question {n}")))["type"] == "reply"
    refused = await alice.request(ask(room.public, "One too many"))
    assert refused["code"] == "rate_limited"
    assert 1 <= refused["retry_after_s"] <= 60
    _, bob = await room.participant("Bob")
    assert (await bob.request(ask(room.public, "Bob is not limited")))["type"] == "reply"


async def test_asking_in_an_ended_meeting_is_a_conflict(room: Room) -> None:
    _, alice = await room.participant("Alice")
    await room.sql("UPDATE meetings SET status = 'ended' WHERE id = $1", room.meeting_id)
    assert (await alice.request(ask(room.public, "Too late?")))["code"] == "conflict"


async def test_roles_decide_who_may_moderate_edit_and_delete(room: Room) -> None:
    _, alice = await room.participant("Alice")
    _, bob = await room.participant("Bob")
    question = (await alice.request(ask(room.public, "Mine")))["data"]["question"]
    moderate = {"type": "moderate", "room": room.public, "question_id": question["id"], "action": "pin"}
    assert (await bob.request(dict(moderate)))["code"] == "forbidden"
    edit = {"type": "edit", "room": room.public, "question_id": question["id"], "text": "Bob's now"}
    assert (await bob.request(dict(edit)))["code"] == "forbidden"
    assert (await bob.request({"type": "delete", "room": room.public, "question_id": question["id"]}))[
        "code"
    ] == "forbidden"

    stranger = await room.pair.world.user("Stranger")
    outsider = await room.client(stranger, rooms=())
    assert (await outsider.request(ask(room.public, "Let me in")))["code"] == "not_found"
    assert (await alice.request({**moderate, "question_id": "not-a-uuid"}))["code"] in ("bad_request", "forbidden")

    moderator = await room.moderator()
    assert (await moderator.request(dict(moderate)))["data"]["question"]["pinned"] is True
    deleted = await moderator.request({"type": "delete", "room": room.moderation, "question_id": question["id"]})
    assert deleted["data"] == {"question_id": question["id"]}
    rows = await room.sql("SELECT count(*) AS n FROM questions WHERE meeting = $1", room.meeting_id)
    assert rows[0]["n"] == 0


async def test_answered_questions_cannot_be_edited(room: Room) -> None:
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    question = (await alice.request(ask(room.public, "Edit me later")))["data"]["question"]
    answered = await moderator.request(
        {
            "type": "moderate",
            "room": room.moderation,
            "question_id": question["id"],
            "action": "answer",
            "text": "Done.",
        }
    )
    assert answered["data"]["question"]["status"] == "answered"
    assert answered["data"]["question"]["answer"] == "Done."
    assert answered["data"]["question"]["answered_at"].endswith("Z")
    refused = await alice.request(
        {"type": "edit", "room": room.public, "question_id": question["id"], "text": "Changed"}
    )
    assert refused["code"] == "conflict"


async def test_pinning_one_unpins_the_other_and_the_snapshot_orders_questions(room: Room) -> None:
    people = [await room.participant(name) for name in ("A", "B", "C")]
    moderator = await room.moderator()
    ids = [
        (await ws.request(ask(room.public, f"Question from {p.name}")))["data"]["question"]["id"] for p, ws in people
    ]
    # votes: question 2 gets two, question 1 one
    for _, ws in people[:2]:
        await ws.request({"type": "vote", "room": room.public, "question_id": ids[2], "up": True})
    await people[0][1].request({"type": "vote", "room": room.public, "question_id": ids[1], "up": True})

    def pin(question_id: str) -> dict[str, str]:
        return {"type": "moderate", "room": room.moderation, "question_id": question_id, "action": "pin"}

    await moderator.request(pin(ids[0]))
    await moderator.request(pin(ids[1]))
    unpinned = await people[2][1].wait_for(
        lambda f: f["type"] == "question.updated" and f["question"]["id"] == ids[0] and not f["question"]["pinned"]
    )
    assert unpinned["question"]["pinned"] is False
    rows = await room.sql("SELECT id FROM questions WHERE meeting = $1 AND pinned", room.meeting_id)
    assert [str(r["id"]) for r in rows] == [ids[1]]

    _, late = await room.participant("Late")
    snapshot = next(f for f in late.frames if f["type"] == "joined")["snapshot"]
    assert [q["id"] for q in snapshot["questions"]] == [ids[1], ids[2], ids[0]]
    assert snapshot["presence"]["count"] >= 1
    assert snapshot["meeting"]["id"] == room.meeting_id


async def test_concurrent_pins_on_both_servers_leave_exactly_one_pinned(room: Room) -> None:
    _, alice = await room.participant("Alice")
    ids = [(await alice.request(ask(room.public, f"Pin candidate {n}")))["data"]["question"]["id"] for n in range(4)]
    moderators = [await room.moderator(server=0), await room.moderator(server=1)]
    frames = [
        moderators[n % 2].request({"type": "moderate", "room": room.moderation, "question_id": qid, "action": "pin"})
        for n, qid in enumerate(ids)
    ]
    answers = await asyncio.gather(*frames)
    assert all(answer["type"] == "reply" for answer in answers)
    rows = await room.sql("SELECT id FROM questions WHERE meeting = $1 AND pinned", room.meeting_id)
    assert len(rows) == 1

    async def clients_agree() -> bool:
        pinned: dict[str, bool] = {}
        for event in alice.events(room.public):
            if "question" in event:
                pinned[event["question"]["id"]] = event["question"]["pinned"]
        return [qid for qid, on in pinned.items() if on] == [str(rows[0]["id"])]

    await eventually(clients_agree)


async def test_dismiss_removes_from_public_and_tells_the_asker(room: Room) -> None:
    asker, alice = await room.participant("Alice")
    await alice.join(f"user:{asker.id}")
    _, bob = await room.participant("Bob")
    moderator = await room.moderator()
    question = (await alice.request(ask(room.public, "Off topic?", anonymous=True)))["data"]["question"]
    await moderator.request(
        {
            "type": "moderate",
            "room": room.moderation,
            "question_id": question["id"],
            "action": "dismiss",
            "reason": "off_topic",
        }
    )
    removed = await bob.wait_for(lambda f: f["type"] == "question.removed")
    assert removed["question_id"] == question["id"]
    told = await alice.wait_for(lambda f: f["type"] == "question.updated" and f["room"] == f"user:{asker.id}")
    assert (told["question"]["status"], told["question"]["dismiss_reason"]) == ("dismissed", "off_topic")
    notification = await alice.wait_for(lambda f: f["type"] == "notification")
    assert notification["notification"]["kind"] == "question.dismissed"
    assert types(bob, room.public).count("question.removed") == 1

    reopened = await moderator.request(
        {"type": "moderate", "room": room.moderation, "question_id": question["id"], "action": "reopen"}
    )
    assert reopened["data"]["question"]["status"] == "live"
    assert (await bob.wait_for(lambda f: f["type"] == "question.created"))["question"]["id"] == question["id"]


async def test_unknown_actions_and_fields_are_bad_requests(room: Room) -> None:
    _, alice = await room.participant("Alice")
    question = (await alice.request(ask(room.public, "Fine")))["data"]["question"]
    moderator = await room.moderator()
    bad = await moderator.request(
        {"type": "moderate", "room": room.moderation, "question_id": question["id"], "action": "explode"}
    )
    assert bad["code"] == "bad_request"
    extra = await alice.request(ask(room.public, "Extra field", colour="red"))
    assert extra["code"] == "bad_request"
    not_a_room = await alice.request(ask("lobby", "Where?"))
    assert not_a_room["code"] == "bad_request"


async def test_a_removed_presenter_is_refused_at_once_on_every_process_joined_or_not(room: Room) -> None:
    """One authorisation point: the grant of a room is asked of one versioned role cache on every frame."""
    _, alice = await room.participant("Alice")
    question = (await alice.request(ask(room.public, "Who decides?")))["data"]["question"]
    watcher = await room.client(room.presenter, rooms=(room.public, room.moderation), server=0)
    actor = await room.client(room.presenter, rooms=(), server=1)  # acts without joining anything
    assert (await actor.request(moderate(room.public, question["id"], "pin")))["type"] == "reply"
    async with httpx.AsyncClient(base_url=room.pair.servers[0].url) as http:
        removed = await http.delete(
            f"{API}/meetings/{room.meeting_id}/presenters/{room.presenter.id}", headers=auth_header(room.owner.token)
        )
        assert removed.status_code == 204
    refused = await actor.request(moderate(room.public, question["id"], "unpin"))
    assert refused["type"] == "error" and refused["code"] == "not_found", refused
    assert (await actor.request(ask(room.public, "Still here?")))["code"] == "not_found"
    assert (await actor.request(on("vote", room.public, question["id"], up=True)))["code"] == "not_found"
    assert await watcher.wait_closed() == 4403
