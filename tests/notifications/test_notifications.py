"""Notifications: stored, delivered live to every session of the user, listed, marked read."""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aioredis

from channels.broker import Broker
from server.db import Database
from server.notifications.jobs import purge_old_notifications
from server.services import Services
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


async def test_becoming_a_presenter_is_notified_once(room: Room) -> None:
    newcomer = await room.pair.world.user("Nina")
    ws = await room.client(newcomer, rooms=())
    rows = await room.sql("SELECT email FROM users WHERE id = $1", newcomer.id)
    async with httpx.AsyncClient(base_url=room.pair.servers[0].url) as http:
        for _ in range(2):  # adding twice is idempotent, and so is the notification
            response = await http.post(
                f"/api/v1/meetings/{room.meeting_id}/presenters",
                json={"email": rows[0]["email"]},
                headers={"Authorization": f"Bearer {room.owner.token}"},
            )
            assert response.status_code == 201, response.text
    event = await ws.wait_for(lambda f: f["type"] == "notification")
    assert event["notification"]["kind"] == "presenter.added"
    assert event["notification"]["data"] == {"meeting_id": room.meeting_id}
    await asyncio.sleep(0.3)
    assert len([f for f in ws.frames if f["type"] == "notification"]) == 1


async def test_old_notifications_are_purged(room: Room) -> None:
    asker, ws = await room.participant("Alice")
    moderator = await room.moderator()
    for n in range(2):
        question = (await ws.request(ask(room.public, f"Q{n}")))["data"]["question"]
        await moderator.request(moderate(room.moderation, question["id"], "answer"))
    await ws.wait_for(lambda f: f["type"] == "notification")
    await room.sql(
        """UPDATE notifications SET created_at = now() - interval '91 days'
           WHERE id = (SELECT id FROM notifications WHERE "user" = $1 ORDER BY created_at LIMIT 1)""",
        asker.id,
    )
    redis = aioredis.Redis.from_url(room.pair.redis_url)
    services = Services(
        settings=room.pair.settings,
        db=Database(room.pair.settings.database_url or ""),
        redis=redis,
        broker=Broker(redis, room.pair.prefix),
    )
    await services.db.start()
    try:
        deleted = await purge_old_notifications({"services": services})  # type: ignore[typeddict-item]
    finally:
        await services.db.close()
        await services.redis.aclose()
    assert deleted == 1
    listed = await ws.request({"type": "notifications"})
    assert len(listed["data"]["items"]) == 1
