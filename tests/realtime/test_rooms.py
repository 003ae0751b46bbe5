"""Rooms across two real server processes: authorisation, fan-out, seq, recovery, the join race, presence."""

from __future__ import annotations

import asyncio
import itertools
import random

import httpx
import redis.asyncio as aioredis

from channels.protocol import Event
from tests.realtime.conftest import Pair
from tests.wsclient import WsClient, connect, test_broker

API = "/api/v1"


class Note(Event, tag="test.note", kw_only=True):
    text: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def seqs(ws: WsClient, room: str) -> list[int]:
    return [f["seq"] for f in ws.events(room)]


def assert_contiguous_after(ws: WsClient, room: str, last: int) -> None:
    """Events after the client's last `joined` go up by exactly 1 to `last`, from seq+1 unless recovered."""
    index = max(i for i, f in enumerate(ws.frames) if f["type"] == "joined" and f["room"] == room)
    joined = ws.frames[index]
    after = [f["seq"] for f in ws.frames[index + 1 :] if f.get("room") == room and "seq" in f]
    assert "joined" not in {f["type"] for f in ws.frames[index + 1 :] if f.get("room") == room}
    start = after[0] if after and joined["recovered"] else joined["seq"] + 1
    assert after == list(range(start, last + 1)), (joined["seq"], after[:10], after[-10:], last)


async def room_seq(redis_url: str, prefix: str, room: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return int(await client.hget(f"{prefix}:room:{{{room}}}:meta", "seq") or 0)
    finally:
        await client.aclose()


async def test_join_authorisation_for_every_room_kind(pair: Pair) -> None:
    world = pair.world
    owner, presenter, participant, stranger = await asyncio.gather(
        world.user("Olive"), world.user("Pat"), world.user("Paula"), world.user("Sam")
    )
    meeting = await world.meeting(owner)
    other_meeting = await world.meeting(stranger)
    await world.presenter(meeting, presenter)
    await world.participant(meeting, participant)
    guest = await world.guest(meeting, "Gus")
    foreign_guest = await world.guest(other_meeting, "Flo")
    public, moderation = f"meeting:{meeting}", f"meeting:{meeting}:moderation"
    expected: dict[str, tuple[str | None, str | None]] = {
        # person: (public room, moderation room); None = joined
        "owner": (None, None),
        "presenter": (None, None),
        "participant": (None, "forbidden"),
        "guest": (None, "forbidden"),
        "foreign_guest": ("not_found", "not_found"),
        "stranger": ("not_found", "not_found"),
    }
    people = {
        "owner": owner,
        "presenter": presenter,
        "participant": participant,
        "guest": guest,
        "foreign_guest": foreign_guest,
        "stranger": stranger,
    }
    for index, (name, person) in enumerate(people.items()):
        async with connect(pair.servers[index % 2].ws_url, person.token) as ws:
            for room, outcome in zip((public, moderation), expected[name], strict=True):
                answer = await ws.request({"type": "join", "room": room})
                if outcome is None:
                    assert answer["type"] == "joined" and answer["room"] == room, (name, room, answer)
                    snapshot = answer["snapshot"]
                    assert set(snapshot) == {"meeting", "questions", "presence", "polls", "mine"}
                    assert snapshot["meeting"]["id"] == meeting and snapshot["questions"] == []
                    assert snapshot["presence"]["count"] >= 1
                else:
                    assert answer["type"] == "error" and answer["code"] == outcome, (name, room, answer)
            own = await ws.request({"type": "join", "room": f"user:{person.id}"})
            assert own["type"] == "joined" and own["recovered"] is False and "snapshot" not in own
            other = await ws.request({"type": "join", "room": f"user:{owner.id if person is not owner else guest.id}"})
            assert other["type"] == "error" and other["code"] == "forbidden"

    # A stranger learns nothing: an existing meeting and a missing one answer alike.
    async with connect(pair.servers[0].ws_url, stranger.token) as ws:
        existing = await ws.request({"type": "join", "room": public})
        missing = await ws.request({"type": "join", "room": "meeting:00000000-0000-4000-8000-000000000000"})
        assert {k: v for k, v in existing.items() if k != "ref"} == {k: v for k, v in missing.items() if k != "ref"}
        for room in ("meeting:abc", f"meeting:{meeting}:backstage", "bogus:1", "", f"meeting:{meeting.upper()}"):
            answer = await ws.request({"type": "join", "room": room})
            assert answer["type"] == "error" and answer["code"] == "not_found", (room, answer)


async def test_an_event_published_through_rest_reaches_both_processes_with_the_same_seq(pair: Pair) -> None:
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    room = f"meeting:{meeting}"
    async with connect(pair.servers[0].ws_url, owner.token) as a, connect(pair.servers[1].ws_url, owner.token) as b:
        await a.join(room)
        await b.join(room)
        async with httpx.AsyncClient(base_url=pair.servers[1].url) as http:
            body = {"title": "Retro"}
            response = await http.patch(f"{API}/meetings/{meeting}", json=body, headers=bearer(owner.token))
            assert response.status_code == 200, response.text
        updates = [await ws.wait_for(lambda f: f["type"] == "meeting.updated") for ws in (a, b)]
        assert updates[0] == updates[1]
        assert updates[0]["room"] == room and updates[0]["meeting"]["title"] == "Retro"
        assert updates[0]["seq"] == await room_seq(pair.redis_url, pair.prefix, room)


async def test_seq_is_contiguous_under_concurrent_publishes_from_both_processes(pair: Pair) -> None:
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    room = f"meeting:{meeting}"
    per_source = 100
    async with connect(pair.servers[0].ws_url, owner.token) as a, connect(pair.servers[1].ws_url, owner.token) as b:
        await a.join(room)
        await b.join(room)

        async def patch_through(server_index: int) -> None:
            limits = httpx.Limits(max_connections=10)
            async with httpx.AsyncClient(base_url=pair.servers[server_index].url, limits=limits) as http:

                async def one(number: int) -> None:
                    body = {"description": f"server {server_index} change {number}"}
                    response = await http.patch(f"{API}/meetings/{meeting}", json=body, headers=bearer(owner.token))
                    assert response.status_code == 200, response.text

                await asyncio.gather(*(one(n) for n in range(per_source)))

        async def publish_directly(name: str) -> None:
            async with test_broker(pair.redis_url, pair.prefix) as broker:
                await asyncio.gather(*(broker.publish(Note(room=room, text=f"{name} {n}")) for n in range(per_source)))

        await asyncio.gather(patch_through(0), patch_through(1), publish_directly("x"), publish_directly("y"))
        last = await room_seq(pair.redis_url, pair.prefix, room)
        assert last >= 4 * per_source
        for ws in (a, b):
            await ws.wait_count(lambda f: f.get("room") == room and f.get("seq") == last, 1, timeout=20)
            assert_contiguous_after(ws, room, last)
        assert [f for f in a.events(room) if f["type"] != "presence"] == [
            f for f in b.events(room) if f["type"] != "presence"
        ]
        assert len(a.events(room, "test.note")) == 2 * per_source
        assert len(a.events(room, "meeting.updated")) == 2 * per_source


async def test_recovery_after_a_disconnect_replays_in_order_and_refuses_what_it_cannot(pair: Pair) -> None:
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    room = f"meeting:{meeting}"
    async with test_broker(pair.redis_url, pair.prefix) as broker:
        async with connect(pair.servers[0].ws_url, owner.token) as ws:
            joined = await ws.join(room)
            epoch = joined["epoch"]
            for n in range(5):
                await broker.publish(Note(room=room, text=f"seen {n}"))
            await ws.wait_count(lambda f: f["type"] == "test.note", 5)
            last_seen = ws.events(room)[-1]["seq"]
        missed = [await broker.publish(Note(room=room, text=f"missed {n}")) for n in range(5)]
        assert missed == list(range(last_seen + 1, last_seen + 6))

        async with connect(pair.servers[1].ws_url, owner.token) as ws:
            back = await ws.join(room, since=last_seen, epoch=epoch)
            assert back["recovered"] is True and back["epoch"] == epoch and "snapshot" not in back
            assert back["seq"] == missed[-1]
            replayed = await ws.wait_count(lambda f: f["type"] == "test.note", 5)
            assert [f["text"] for f in replayed] == [f"missed {n}" for n in range(5)]
            assert [f["seq"] for f in replayed] == missed
            live = await broker.publish(Note(room=room, text="live"))
            assert (await ws.wait_for(lambda f: f.get("text") == "live"))["seq"] == live
            assert_contiguous_after(ws, room, live)

            current = await ws.join(room, since=live, epoch=epoch)
            assert current["recovered"] is True and current["seq"] == live
            without_epoch = await ws.join(room, since=live - 2)
            assert without_epoch["recovered"] is True
            for since, other_epoch in ((live + 5, epoch), (live - 1, "0000000000000000")):
                refused = await ws.join(room, since=since, epoch=other_epoch)
                assert refused["recovered"] is False and refused["snapshot"]["meeting"]["id"] == meeting
                assert refused["seq"] == live and refused["epoch"] == epoch
            negative = await ws.request({"type": "join", "room": room, "since": -1})
            assert negative["type"] == "error" and negative["code"] == "bad_request"


async def test_lost_history_means_a_new_epoch_a_snapshot_and_an_unsolicited_joined(pair: Pair) -> None:
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    room = f"meeting:{meeting}"
    async with test_broker(pair.redis_url, pair.prefix) as broker, connect(pair.servers[0].ws_url, owner.token) as live:
        first = await live.join(room)
        for n in range(3):
            await broker.publish(Note(room=room, text=str(n)))
        await live.wait_count(lambda f: f["type"] == "test.note", 3)
        seen = live.events(room)[-1]["seq"]
        # Redis restarted without persistence, as far as this room is concerned:
        await broker.redis.delete(f"{pair.prefix}:room:{{{room}}}:meta", f"{pair.prefix}:room:{{{room}}}:history")

        async with connect(pair.servers[1].ws_url, owner.token) as back:
            again = await back.join(room, since=seen, epoch=first["epoch"])
            assert again["recovered"] is False and again["epoch"] != first["epoch"] and again["seq"] == 0
            assert again["snapshot"]["meeting"]["id"] == meeting
            new_seq = await broker.publish(Note(room=room, text="after"))
            assert new_seq == 1
            assert (await back.wait_for(lambda f: f.get("text") == "after"))["seq"] == 1

        # The member that was live when the epoch changed is told, with no ref and a fresh snapshot.
        told = await live.wait_for(lambda f: f["type"] == "joined" and "ref" not in f)
        assert told["recovered"] is False and told["epoch"] == again["epoch"] and told["seq"] >= 1
        assert told["snapshot"]["meeting"]["id"] == meeting
        newest = await broker.publish(Note(room=room, text="newest"))
        await live.wait_for(lambda f: f.get("text") == "newest")
        assert_contiguous_after(live, room, newest)


async def test_the_join_race_neither_loses_nor_duplicates(pair: Pair) -> None:
    """Clients join (and rejoin with `since`) on both processes while events stream into the room."""
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    room = f"meeting:{meeting}"
    total = 400
    members = 16
    done = asyncio.Event()
    settled = 0  # members whose (last) join has been answered

    async def publish() -> None:
        async with test_broker(pair.redis_url, pair.prefix) as broker:
            n = 0
            while n < total or settled < members:  # joins land mid-stream, and a tail follows the last one
                await broker.publish(Note(room=room, text=str(n)))
                await asyncio.sleep(0.003 if n % 2 else 0)
                n += 1
            for tail in range(50):
                await broker.publish(Note(room=room, text=f"tail {tail}"))
        done.set()

    async def member(index: int) -> tuple[WsClient, int]:
        nonlocal settled
        await asyncio.sleep(random.uniform(0, 0.8))
        server = pair.servers[index % 2]
        async with connect(server.ws_url, owner.token) as ws:
            joined = await ws.join(room)
            if index % 3 == 0:  # leave mid-stream and come back with since
                await asyncio.sleep(random.uniform(0.05, 0.3))
                since = ws.events(room)[-1]["seq"] if ws.events(room) else joined["seq"]
                epoch = joined["epoch"]
                await ws.close()
                async with connect(pair.servers[(index + 1) % 2].ws_url, owner.token) as again:
                    back = await again.join(room, since=since, epoch=epoch)
                    assert back["recovered"] is True, back
                    settled += 1
                    await done.wait()
                    last = await room_seq(pair.redis_url, pair.prefix, room)
                    await again.wait_count(lambda f: f.get("room") == room and f.get("seq") == last, 1, timeout=20)
                    return again, last
            settled += 1
            await done.wait()
            last = await room_seq(pair.redis_url, pair.prefix, room)
            await ws.wait_count(lambda f: f.get("room") == room and f.get("seq") == last, 1, timeout=20)
            return ws, last

    publisher = asyncio.create_task(publish())
    results = await asyncio.gather(*(member(i) for i in range(members)))
    await publisher
    final = await room_seq(pair.redis_url, pair.prefix, room)
    assert final >= total
    late_joiners = 0
    for ws, last in results:  # (presence events may follow `last` as members leave)
        assert total <= last <= final
        assert_contiguous_after(ws, room, last)
        seen = [f["seq"] for f in ws.events(room)]
        assert len(seen) == len(set(seen)), "a duplicate"
        late_joiners += not seen
    assert late_joiners == 0, "every member should have joined mid-stream"


async def test_leave_stops_delivery(pair: Pair) -> None:
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    room = f"meeting:{meeting}"
    async with test_broker(pair.redis_url, pair.prefix) as broker, connect(pair.servers[0].ws_url, owner.token) as ws:
        await ws.join(room)
        await broker.publish(Note(room=room, text="before"))
        await ws.wait_for(lambda f: f.get("text") == "before")
        left = await ws.request({"type": "leave", "room": room})
        assert left["type"] == "reply"
        await broker.publish(Note(room=room, text="after"))
        await broker.publish(Note(room=f"user:{owner.id}", text="marker"))  # same pub/sub connection, later
        await ws.wait_for(lambda f: f.get("text") == "marker")
        assert not [f for f in ws.frames if f.get("text") == "after"]


async def test_removed_presenter_and_deleted_meeting_close_sockets_with_4403(pair: Pair) -> None:
    owner, presenter, participant, bystander = await asyncio.gather(
        pair.world.user("Olive"), pair.world.user("Pat"), pair.world.user("Paula"), pair.world.user("Bo")
    )
    meeting = await pair.world.meeting(owner)
    await pair.world.presenter(meeting, presenter)
    await pair.world.participant(meeting, participant)
    async with (
        connect(pair.servers[1].ws_url, presenter.token) as pat,
        connect(pair.servers[1].ws_url, participant.token) as paula,
        connect(pair.servers[0].ws_url, bystander.token) as bo,
        httpx.AsyncClient(base_url=pair.servers[0].url) as http,
    ):
        await pat.join(f"meeting:{meeting}:moderation")
        await paula.join(f"meeting:{meeting}")
        response = await http.delete(f"{API}/meetings/{meeting}/presenters/{presenter.id}", headers=bearer(owner.token))
        assert response.status_code == 204, response.text
        assert await pat.wait_closed() == 4403
        assert (await paula.request({"type": "ping"}))["type"] == "pong"

        response = await http.delete(f"{API}/meetings/{meeting}", headers=bearer(owner.token))
        assert response.status_code == 204, response.text
        assert await paula.wait_closed() == 4403
        assert (await bo.request({"type": "ping"}))["type"] == "pong"


def presence_counts(ws: WsClient, room: str) -> list[int]:
    return [f["count"] for f in ws.events(room, "presence")]


async def test_presence_counts_distinct_users_across_processes_at_most_once_a_second(pair: Pair) -> None:
    owner, ann, ben = await asyncio.gather(pair.world.user("Olive"), pair.world.user("Ann"), pair.world.user("Ben"))
    meeting = await pair.world.meeting(owner)
    for person in (ann, ben):
        await pair.world.participant(meeting, person)
    room = f"meeting:{meeting}"
    async with connect(pair.servers[0].ws_url, owner.token) as watcher:
        first = await watcher.join(room)
        assert first["snapshot"]["presence"] == {"count": 1}
        async with (
            connect(pair.servers[0].ws_url, ann.token) as ann_a,
            connect(pair.servers[1].ws_url, ann.token) as ann_b,
            connect(pair.servers[1].ws_url, ben.token) as ben_b,
        ):
            for ws in (ann_a, ann_b, ben_b):
                await ws.join(room)
            await watcher.wait_for(lambda f: f["type"] == "presence" and f["count"] == 3, timeout=10)
            late = await ben_b.join(room)  # a rejoin does not count twice
            assert late["snapshot"]["presence"]["count"] == 3
            await ann_a.close()
            await asyncio.sleep(0)  # ann still has a tab on the other process
            await ann_b.request({"type": "leave", "room": room})
        await watcher.wait_for(lambda f: f["type"] == "presence" and f["count"] == 1, timeout=10)
        assert 4 not in presence_counts(watcher, room)
        times = [t for f, t in zip(watcher.frames, watcher.arrivals, strict=True) if f["type"] == "presence"]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap > 0.8 for gap in gaps), gaps
