"""The realtime core's no-gap state machine and limits, against `channels.memory`: no Redis, no subprocess."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.flood import RateLimit
from channels.protocol import RoomFrame
from channels.seams import FrameRouter, Grant, SessionView
from tests.channels.support import Note, processes

ROOM = "open:hall"


def assert_contiguous(frames: list[dict[str, Any]], start: int, last: int) -> None:
    assert [f["seq"] for f in frames if f["seq"] > start] == list(range(start + 1, last + 1))


async def test_the_join_race_loses_and_repeats_nothing() -> None:
    """Events published while a join is in flight arrive once each, in order, right after `joined`."""
    async with processes(1) as (broker, [process]):
        ada = await process.connect("ada")
        await broker.publish(Note(room=ROOM, text="before"))
        ada.send({"type": "join", "room": ROOM, "ref": "j"})
        last = 0
        for n in range(50):
            last = await broker.publish(Note(room=ROOM, text=str(n)))
            await asyncio.sleep(0)
        joined = await ada.wait_for(lambda f: f.get("ref") == "j")
        await ada.wait_for(lambda f: f.get("seq") == last and f["type"] == "test.note")
        assert joined["recovered"] is False and "snapshot" in joined
        assert_contiguous(ada.events(ROOM), joined["seq"], last)


async def test_recovery_replays_what_was_missed_and_falls_back_to_a_snapshot_past_history() -> None:
    async with processes(2) as (broker, [one, two]):
        broker.history_events = 5
        ada = await one.connect("ada")
        first = await ada.join(ROOM)
        await broker.publish(Note(room=ROOM, text="seen"))
        seen = (await ada.wait_for(lambda f: f["type"] == "test.note"))["seq"]
        await ada.disconnect()
        missed = [await broker.publish(Note(room=ROOM, text=f"missed {n}")) for n in range(3)]
        back = await two.connect("ada")
        again = await back.join(ROOM, since=seen, epoch=first["epoch"])
        assert again["recovered"] is True and "snapshot" not in again and again["seq"] == missed[-1]
        await back.wait_for(lambda f: f.get("seq") == missed[-1] and f["type"] == "test.note")
        assert [f["text"] for f in back.events(ROOM)] == ["missed 0", "missed 1", "missed 2"]

        for n in range(10):  # past the 5 events of history
            await broker.publish(Note(room=ROOM, text=str(n)))
        late = await two.connect("bob")
        answer = await late.join(ROOM, since=seen, epoch=first["epoch"])
        assert answer["recovered"] is False and "snapshot" in answer


async def test_an_epoch_change_gives_joiners_a_snapshot_and_members_an_unsolicited_joined() -> None:
    async with processes(1) as (broker, [process]):
        live = await process.connect("ada")
        first = await live.join(ROOM)
        await broker.publish(Note(room=ROOM, text="old"))
        broker.lose_room(ROOM)  # a Redis restart without persistence, for this room
        back = await process.connect("bob")
        again = await back.join(ROOM, since=1, epoch=first["epoch"])
        assert again["recovered"] is False and again["epoch"] != first["epoch"] and again["seq"] == 0
        await broker.publish(Note(room=ROOM, text="new"))  # its new epoch shows the member it is behind
        told = await live.wait_for(lambda f: f["type"] == "joined" and "ref" not in f)
        assert told["recovered"] is False and told["epoch"] == again["epoch"] and "snapshot" in told
        assert told["seq"] == 1  # the snapshot covers the event that revealed the change
        newest = await broker.publish(Note(room=ROOM, text="newest"))
        await live.wait_for(lambda f: f.get("text") == "newest")
        assert live.events(ROOM)[-1]["seq"] == newest


async def test_a_broken_pubsub_connection_ends_in_an_unsolicited_joined_never_a_silent_gap() -> None:
    async with processes(2) as (broker, [one, two]):
        ada = await one.connect("ada")
        bob = await two.connect("bob")
        await ada.join(ROOM)
        await bob.join(ROOM)
        one.pubsub.break_connection()
        lost = [await broker.publish(Note(room=ROOM, text=f"lost {n}")) for n in range(3)]
        await bob.wait_for(lambda f: f.get("seq") == lost[-1])  # the other process heard them
        one.pubsub.restore()
        told = await ada.wait_for(lambda f: f["type"] == "joined" and "ref" not in f and f["room"] == ROOM)
        assert told["recovered"] is False and told["seq"] == lost[-1] and "snapshot" in told
        after = await broker.publish(Note(room=ROOM, text="after"))
        await ada.wait_for(lambda f: f.get("seq") == after)
        assert not [f for f in ada.events(ROOM) if f.get("text", "").startswith("lost")]


async def test_a_slow_consumer_is_closed_with_4008_after_a_bounded_number_of_bytes() -> None:
    async with processes(1, max_queue_bytes=64 * 1024) as (broker, [process]):
        slow = await process.connect("ada")
        fast = await process.connect("bob")
        await slow.join(ROOM)
        await fast.join(ROOM)
        slow.stall()
        last = 0
        for n in range(200):  # ~200 KB, past the 64 KiB queue
            last = await broker.publish(Note(room=ROOM, text=f"{n}" + "x" * 1000))
            await asyncio.sleep(0)  # a reading consumer gets its turn
        await fast.wait_for(lambda f: f.get("seq") == last)
        assert process.gateway.metrics.queue_overflows._value.get() == 1  # type: ignore[attr-defined]
        [session] = [s for s in process.gateway.sessions.values() if s.identity.user_id == "ada"]
        assert session.close_code == 4008
        slow.resume()
        assert await slow.wait_closed() == 4008
        assert len([f for f in slow.frames if f["type"] == "test.note"]) < 70


async def test_rejoining_a_room_while_backed_up_builds_no_snapshot_and_joins_are_rate_limited() -> None:
    async with processes(1, max_queue_bytes=1024 * 1024) as (_, [process]):
        ada = await process.connect("ada")
        await ada.join(ROOM)
        built = process.policy.snapshots
        ada.stall()
        for n in range(40):
            ada.send({"type": "join", "room": ROOM, "ref": f"again {n}"})
        await asyncio.sleep(0.1)
        assert process.policy.snapshots == built + 1  # one more; none while that one is not even read
        ada.resume()
        limited = await ada.wait_for(lambda f: f["type"] == "error" and f["code"] == "rate_limited")
        assert limited["retry_after_s"] >= 1
        assert "snapshot" in await ada.wait_for(lambda f: f.get("ref") == "again 0")
        again = await ada.wait_for(lambda f: f.get("ref") == "again 1")
        assert again["type"] == "joined" and again["recovered"] is True and "snapshot" not in again


async def test_flooding_gets_rate_limited_then_4429() -> None:
    async with processes(1, rate_limit=RateLimit(per_second=1.0, burst=5, strikes=3)) as (_, [process]):
        ada = await process.connect("ada")
        for n in range(12):
            ada.send({"type": "ping", "ref": str(n)})
        limited = await ada.wait_for(lambda f: f["type"] == "error")
        assert limited["code"] == "rate_limited" and limited["retry_after_s"] >= 1
        assert await ada.wait_closed() == 4429
        assert len([f for f in ada.frames if f["type"] == "pong"]) == 5


class Shout(RoomFrame, tag="shout", kw_only=True):
    text: str


async def test_a_room_frame_is_authorised_like_a_join_and_its_handler_gets_the_grant() -> None:
    router = FrameRouter()
    seen: list[tuple[str, Grant]] = []

    async def shout(session: SessionView, frame: Shout, grant: Grant) -> dict[str, Any]:
        seen.append((session.identity.user_id, grant))
        return {"heard": frame.text}

    router.on(Shout)(shout)
    from channels.protocol import CORE_CLIENT_FRAMES

    async with processes(1, routers=[router], client_frames=(*CORE_CLIENT_FRAMES, Shout)) as (_, [process]):
        ada = await process.connect("ada")
        answer = await ada.request({"type": "shout", "room": ROOM, "text": "hi"})  # not joined: allowed
        assert answer == {"type": "reply", "ref": answer["ref"], "data": {"heard": "hi"}}
        assert seen == [("ada", Grant(room=ROOM, role="member"))]
        refused = await ada.request({"type": "shout", "room": "closed:vault", "text": "hi"})
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        unknown = await ada.request({"type": "shout", "room": "lobby", "text": "hi"})
        assert unknown["code"] == "bad_request"
        assert len(seen) == 1


async def test_disconnect_by_credential_closes_exactly_those_sockets() -> None:
    async with processes(2) as (broker, [one, two]):
        ada = await one.connect("ada")
        ada_too = await two.connect("ada")
        bob = await two.connect("bob")
        await broker.disconnect_user("ada", None, 4401, credentials=["cred:ada"])
        assert await ada.wait_closed() == 4401
        assert await ada_too.wait_closed() == 4401
        assert (await bob.request({"type": "ping"}))["type"] == "pong"
        await broker.disconnect_user("bob", None, 4401, credentials=["cred:bob"], except_credentials=["cred:bob"])
        assert (await bob.request({"type": "ping"}))["type"] == "pong"
