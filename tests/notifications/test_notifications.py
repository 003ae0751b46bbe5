"""Notifications: stored, delivered live to every session of the user, listed, marked read."""

from __future__ import annotations

from tests.qa.conftest import Room, ask, moderate


async def test_answer_notifies_every_session_of_the_author_on_both_servers(room: Room) -> None:
    asker, first = await room.participant("Alice", server=0)
    second = await room.client(asker, rooms=(), server=1)
    moderator = await room.moderator()
    question = (await first.request(ask(room.public, "Will it ship?", anonymous=True)))["data"]["question"]
    await moderator.request(moderate(room.moderation, question["id"], "answer", text="Yes, in May."))
    for ws in (first, second):
        event = await ws.wait_for(lambda f: f["type"] == "notification")
        assert event["room"] == f"user:{asker.id}"
        notification = event["notification"]
        assert notification["kind"] == "question.answered"
        assert notification["body"] == "Yes, in May."
        assert notification["data"]["question_id"] == question["id"]
        assert notification["read"] is False
        assert set(notification) == {"id", "kind", "title", "body", "data", "created_at", "read"}


async def test_guest_authors_are_notified_too(room: Room) -> None:
    guest = await room.pair.world.guest(room.meeting_id, "Gus")
    ws = await room.client(guest)
    moderator = await room.moderator()
    question = (await ws.request(ask(room.public, "Guest question")))["data"]["question"]
    await moderator.request(moderate(room.moderation, question["id"], "answer"))
    event = await ws.wait_for(lambda f: f["type"] == "notification")
    assert event["notification"]["kind"] == "question.answered"


async def test_list_read_and_unread_after_reconnect(room: Room) -> None:
    asker, ws = await room.participant("Alice")
    moderator = await room.moderator()
    ids = []
    for n in range(5):
        question = (await ws.request(ask(room.public, f"Question {n}")))["data"]["question"]
        await moderator.request(moderate(room.moderation, question["id"], "answer", text=f"Answer {n}"))
        ids.append((await ws.wait_for(lambda f: f["type"] == "notification"))["notification"]["id"])

    page = await ws.request({"type": "notifications", "limit": 2})
    assert page["data"]["unread"] == 5
    assert [n["id"] for n in page["data"]["items"]] == ids[::-1][:2], "newest first"
    rest = await ws.request({"type": "notifications", "limit": 10, "before": page["data"]["items"][-1]["id"]})
    assert [n["id"] for n in rest["data"]["items"]] == ids[::-1][2:]

    foreign = await room.pair.world.user("Mallory")
    mallory = await room.client(foreign, rooms=())
    ignored = await mallory.request({"type": "read", "ids": ids})
    assert ignored["data"] == {"unread": 0}

    marked = await ws.request({"type": "read", "ids": [*ids[:3], "not-an-id", "00000000-0000-4000-8000-000000000000"]})
    assert marked["data"] == {"unread": 2}
    listed = await ws.request({"type": "notifications"})
    assert [n["read"] for n in listed["data"]["items"]] == [False, False, True, True, True]

    again = await room.client(asker, rooms=())
    assert again.welcome is not None
    assert again.welcome["unread_notifications"] == 2

    for bad in (
        {"type": "notifications", "limit": 0},
        {"type": "notifications", "limit": 101},
        {"type": "notifications", "before": "x"},
    ):
        assert (await ws.request(bad))["code"] == "bad_request"
