"""`meeting.starting` reminders from real SAQ worker processes: once per person, at the meeting's current time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from tests.qa.conftest import Room
from tests.support import running_workers, server_environment

LEAD_S = 3


def worker_env(room: Room) -> dict[str, str]:
    settings = room.pair.settings
    return server_environment(
        settings.database_url or "",
        room.pair.redis_url,
        room.pair.prefix,
        ROOMCAST_REMINDER_LEAD_S=str(LEAD_S),
        ROOMCAST_REMINDER_SCAN_S="1",
    )


async def starts_in(room: Room, seconds: float) -> datetime:
    starts_at = datetime.now(UTC) + timedelta(seconds=seconds)
    await room.sql("UPDATE meetings SET starts_at = $2, status = 'scheduled' WHERE id = $1", room.meeting_id, starts_at)
    return starts_at


async def test_reminder_once_per_person_with_two_workers(room: Room) -> None:
    _, participant = await room.participant("Alice", rooms=())
    owner = await room.client(room.owner, rooms=())
    presenter = await room.client(room.presenter, rooms=())
    starts_at = await starts_in(room, LEAD_S + 2)
    with running_workers(worker_env(room), 2):
        for ws in (participant, owner, presenter):
            event = await ws.wait_for(lambda f: f["type"] == "notification", timeout=15)
            notification = event["notification"]
            assert notification["kind"] == "meeting.starting"
            assert notification["data"]["meeting_id"] == room.meeting_id
            arrived = datetime.now(UTC)
            assert arrived >= starts_at - timedelta(seconds=LEAD_S + 1.5), "not before the lead time"
        await asyncio.sleep(2.5)  # both workers keep scanning: nobody gets a second one
    for ws in (participant, owner, presenter):
        assert [f["notification"]["kind"] for f in ws.frames if f["type"] == "notification"] == ["meeting.starting"]
    rows = await room.sql("SELECT count(*) AS n FROM notifications WHERE kind = 'meeting.starting'")
    assert rows[0]["n"] == 3


async def test_a_moved_meeting_is_reminded_at_its_new_time(room: Room) -> None:
    owner = await room.client(room.owner, rooms=())
    await starts_in(room, LEAD_S + 3)
    with running_workers(worker_env(room), 1):
        await asyncio.sleep(1)
        new_start = await starts_in(room, LEAD_S + 8)  # moved before its reminder was due
        started = time.monotonic()
        event = await owner.wait_for(lambda f: f["type"] == "notification", timeout=20)
        waited = time.monotonic() - started
    assert event["notification"]["data"]["starts_at"].startswith(new_start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert waited >= 8 - 1.5, f"reminded at the old time ({waited:.1f} s after the move)"


async def test_cancelled_meetings_are_not_reminded(room: Room) -> None:
    owner = await room.client(room.owner, rooms=())
    await starts_in(room, LEAD_S + 1)
    await room.sql("UPDATE meetings SET status = 'cancelled' WHERE id = $1", room.meeting_id)
    with running_workers(worker_env(room), 1):
        await asyncio.sleep(LEAD_S + 2)
    assert not [f for f in owner.frames if f["type"] == "notification"]
