"""Rooms over several backends (`channels.sharding`), against `channels.memory`: no Redis, no subprocess.

Each `MemoryBroker` plays one Redis; a process holds one `MemoryPubSub` per shard it has members on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from channels.config import GatewayConfig
from channels.gateway import Gateway
from channels.memory import MemoryBroker, MemoryPubSub
from channels.rooms import UserRoomPolicy
from channels.sharding import ShardedPubSub, ShardedStream
from channels.shards import ShardMap
from tests.channels.support import FakeSocket, Note, OpenRooms, authenticate
from tests.support import eventually


def key(room: str) -> str | None:
    """`open:<key>` rooms are placed by `<key>`, user rooms by their user; nothing else has a key."""
    if room.startswith("open:"):
        return room[5:]
    return room[5:] if room.startswith("user:") else None


class ShardedProcess:
    def __init__(self, default: MemoryBroker, shards: list[MemoryBroker]) -> None:
        self.pubsubs = ShardMap(default.pubsub(), [shard.pubsub() for shard in shards], key)
        self.pubsub = ShardedPubSub(self.pubsubs, idle_close_s=0.05)
        self.stream = ShardedStream(ShardMap(default, shards, key), [f"shard{n}" for n in range(len(shards))])
        self.gateway = Gateway(
            GatewayConfig(
                stream=self.stream,
                pubsub=self.pubsub,
                authenticator=authenticate,
                policies=[UserRoomPolicy(), OpenRooms()],
            )
        )
        self.sockets: list[FakeSocket] = []

    async def connect(self, user: str) -> FakeSocket:
        socket = FakeSocket(self.gateway)
        self.sockets.append(socket)
        socket.send({"type": "auth", "token": f"user:{user}"})
        await socket.wait_for(lambda f: f["type"] == "welcome")
        return socket


@contextlib.asynccontextmanager
async def sharded(shards: int = 2) -> AsyncIterator[tuple[list[MemoryBroker], ShardedProcess]]:
    backends = [MemoryBroker() for _ in range(shards)]
    process = ShardedProcess(MemoryBroker(), backends)
    await process.gateway.start()
    try:
        yield backends, process
    finally:
        for socket in process.sockets:
            await socket.disconnect()
        await process.gateway.stop()


def room_on(process: ShardedProcess, shard: int, skip: int = 0) -> str:
    """An `open:` room that lives on `shard`."""
    names = (f"open:room-{n}" for n in range(1000))
    return [name for name in names if process.stream.streams.index(name) == shard][skip]


async def test_each_room_s_stream_lives_on_its_shard_and_events_reach_members() -> None:
    async with sharded(2) as (backends, process):
        rooms = [room_on(process, 0), room_on(process, 1)]
        ada = await process.connect("ada")
        for room in rooms:
            await ada.join(room)
        seqs = await process.stream.publish_many([Note(room=r, text=f"{r} {n}") for n in range(3) for r in rooms])
        assert seqs == [1, 1, 2, 2, 3, 3]
        for room in rooms:
            await ada.wait_for(lambda f, room=room: f.get("room") == room and f.get("seq") == 3)
            assert [f["text"] for f in ada.events(room)] == [f"{room} {n}" for n in range(3)]
        assert set(backends[0]._rooms) >= {rooms[0]} and rooms[1] not in backends[0]._rooms
        assert set(backends[1]._rooms) >= {rooms[1]} and rooms[0] not in backends[1]._rooms


async def test_a_broken_shard_connection_resyncs_only_that_shard_s_rooms() -> None:
    async with sharded(2) as (_backends, process):
        kept, lost = room_on(process, 0), room_on(process, 1)
        user = next(u for u in (f"ada{n}" for n in range(100)) if process.stream.streams.index(f"user:{u}") == 0)
        ada = await process.connect(user)
        await ada.join(kept)
        await ada.join(lost)
        shard_pubsub: MemoryPubSub = process.pubsubs.shards[1]  # type: ignore[assignment]
        shard_pubsub.break_connection()
        missed = await process.stream.publish(Note(room=lost, text="missed"))
        delivered = await process.stream.publish(Note(room=kept, text="delivered"))
        await ada.wait_for(lambda f: f.get("room") == kept and f.get("seq") == delivered)
        shard_pubsub.restore()
        told = await ada.wait_for(lambda f: f["type"] == "joined" and "ref" not in f)
        assert told["room"] == lost and told["recovered"] is False and told["seq"] == missed
        after = await process.stream.publish(Note(room=kept, text="after"))
        await ada.wait_for(lambda f: f.get("room") == kept and f.get("seq") == after)
        unsolicited = [f["room"] for f in ada.frames if f["type"] == "joined" and "ref" not in f]
        assert unsolicited == [lost], "the other shard's room never looked behind"


async def test_a_process_connects_to_a_shard_with_its_first_member_and_lets_go_after_the_last() -> None:
    async with sharded(3) as (_backends, process):
        user_shard = process.stream.streams.index("user:ada")
        other = next(n for n in range(3) if n != user_shard)
        ada = await process.connect("ada")
        assert process.pubsub.open_shards() == [user_shard]
        room = room_on(process, other)
        await ada.join(room)
        assert process.pubsub.open_shards() == sorted({user_shard, other})
        assert (await ada.request({"type": "leave", "room": room}))["type"] == "reply"

        async def closed() -> bool:
            return process.pubsub.open_shards() == [user_shard]

        await eventually(closed, timeout=2)
        again = await ada.join(room)  # and connects again when a member comes back
        assert again["type"] == "joined" and other in process.pubsub.open_shards()


async def test_control_messages_travel_on_the_default_backend() -> None:
    async with sharded(2) as (_backends, process):
        ada = await process.connect("ada")
        bob = await process.connect("bob")
        await process.stream.disconnect_user("ada", None, 4401)
        assert await ada.wait_closed() == 4401
        assert bob.close_code is None
        assert process.stream.streams.for_room("lobby") is process.stream.streams.default
