"""How frames reach a socket on the direct path: one system call per member per loop iteration, no idle task.

The socket is a real `DirectSocket` over a transport that records each write call (what
uvicorn's connection would hand to the kernel); the hub and the stream are `channels.memory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from channels.flood import RateLimit
from channels.hub import Hub
from channels.memory import MemoryBroker
from channels.metrics import Metrics
from channels.seams import Identity
from channels.session import Session
from channels.transport import LARGE_FLUSH, DirectWriter, WriteBatch
from channels.wire import DirectSocket
from tests.channels.support import Note, processes

ROOM = "open:hall"


class RecordingTransport:
    """The transport under uvicorn's connection: every `write`/`writelines` call is one system call."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.broken = False

    def write(self, data: bytes) -> None:
        self.writelines([data])

    def writelines(self, frames: Any) -> None:
        if self.broken:
            raise OSError("the transport failed")
        self.calls.append(list(frames))

    def is_closing(self) -> bool:
        return False

    def texts(self, call: int) -> list[str]:
        return [msgspec.json.decode(frame[2:])["text"] for frame in self.calls[call]]


class Connection:
    """What `DirectSocket` reads of uvicorn's `websockets-sansio` connection."""

    def __init__(self) -> None:
        self.transport = RecordingTransport()
        self.writable = asyncio.Event()
        self.writable.set()
        self.close_sent = False
        self.disconnected = False


class Member:
    def __init__(self, batch: WriteBatch, max_queue_bytes: int = 1 << 20) -> None:
        self.connection = Connection()
        self.closes: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            self.closes.append(message)

        metrics = Metrics()
        writer = DirectWriter(DirectSocket(self.connection), send, False, metrics)
        self.session = Session(
            writer,
            session_id=f"s{id(self)}",
            identity=Identity(user_id="ada", display_name="Ada", guest=False),
            binary=False,
            metrics=metrics,
            max_queue_bytes=max_queue_bytes,
            close_timeout_s=1.0,
            rate_limit=RateLimit(),
            batch=batch,
        )

    @property
    def calls(self) -> list[list[bytes]]:
        return self.connection.transport.calls


WINDOW_S = 0.2


@contextlib.asynccontextmanager
async def hub_writing_to(batch: WriteBatch) -> AsyncIterator[tuple[MemoryBroker, Hub, WriteBatch]]:
    """A hub on `channels.memory` whose members write through `batch`, as the gateway composes them."""
    broker = MemoryBroker()
    pubsub = broker.pubsub()
    hub = Hub(pubsub, batch=batch)
    await pubsub.start()
    try:
        yield broker, hub, batch
    finally:
        await hub.stop()
        await pubsub.stop()


@pytest.fixture
async def room() -> AsyncIterator[tuple[MemoryBroker, Hub, WriteBatch]]:
    async with hub_writing_to(WriteBatch()) as parts:
        yield parts


@pytest.fixture
async def coalescing() -> AsyncIterator[tuple[MemoryBroker, Hub, WriteBatch]]:
    """A room whose process coalesces large flushes within `WINDOW_S` (`ROOMCAST_WRITE_DELAY_MS`)."""
    async with hub_writing_to(WriteBatch(WINDOW_S)) as parts:
        yield parts


async def live_member(broker: MemoryBroker, hub: Hub, batch: WriteBatch, max_queue_bytes: int = 1 << 20) -> Member:
    member = Member(batch, max_queue_bytes)
    sub, generation = await hub.attach(member.session, ROOM)
    cursor = await broker.cursor(ROOM)
    assert hub.activate(sub, generation, cursor.epoch, cursor.seq)
    return member


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_events_ready_in_one_loop_iteration_reach_a_member_in_one_write(
    room: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    broker, hub, batch = room
    ada, bob = await live_member(broker, hub, batch), await live_member(broker, hub, batch)
    await broker.publish(Note(room=ROOM, text="one"))  # both delivered in the same loop iteration
    await broker.publish(Note(room=ROOM, text="two"))
    await turns()
    for member in (ada, bob):
        assert len(member.calls) == 1
        assert member.connection.transport.texts(0) == ["one", "two"]


async def test_a_lone_event_is_written_in_the_iteration_it_arrives_without_a_timer(
    room: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    broker, hub, batch = room
    ada = await live_member(broker, hub, batch)
    await broker.publish(Note(room=ROOM, text="alone"))
    await turns(2)  # the delivery's iteration, then the batch's callback: no timer in between
    assert len(ada.calls) == 1 and ada.connection.transport.texts(0) == ["alone"]
    await broker.publish(Note(room=ROOM, text="later"))
    await turns()
    assert [ada.connection.transport.texts(n) for n in range(2)] == [["alone"], ["later"]]


async def test_an_idle_connection_has_no_writer_task_until_the_socket_backs_up(
    room: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    broker, hub, batch = room
    ada = await live_member(broker, hub, batch)
    tasks = len(asyncio.all_tasks())
    ada.connection.writable.clear()  # the transport is above its high-water mark
    for text in ("a", "b", "c"):
        await broker.publish(Note(room=ROOM, text=text))
    await turns()
    assert ada.calls == [] and ada.session.backlogged
    assert len(asyncio.all_tasks()) == tasks + 1  # a writer, only now
    ada.connection.writable.set()
    await turns()
    assert len(ada.calls) == 1 and ada.connection.transport.texts(0) == ["a", "b", "c"]
    assert not ada.session.backlogged and len(asyncio.all_tasks()) == tasks  # and gone again
    await broker.publish(Note(room=ROOM, text="d"))
    await turns()
    assert ada.connection.transport.texts(1) == ["d"]


async def test_frames_of_the_iteration_go_out_before_the_close_frame(
    room: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    broker, hub, batch = room
    ada = await live_member(broker, hub, batch)
    await broker.publish(Note(room=ROOM, text="last words"))
    await asyncio.sleep(0)  # delivered, not yet flushed
    ada.session.close(4000, "bye")
    assert ada.connection.transport.texts(0) == ["last words"]
    await turns()
    assert ada.closes == [{"type": "websocket.close", "code": 4000, "reason": "bye"}]
    await ada.session.stop()


async def test_more_than_the_queue_limit_in_one_iteration_closes_with_4008(
    room: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    """The iteration's frames count against the same byte limit as a queue: a burst cannot bypass it."""
    broker, hub, batch = room
    ada = await live_member(broker, hub, batch, max_queue_bytes=4096)
    for n in range(20):  # ~20 KiB in one loop iteration
        await broker.publish(Note(room=ROOM, text=f"{n:04d}" + "x" * 1000))
    await turns()
    assert ada.calls == []
    assert ada.session.close_code == 4008
    await turns()
    assert [close["code"] for close in ada.closes] == [4008]
    await ada.session.stop()


async def test_one_frame_larger_than_the_limit_goes_to_a_writable_socket(
    room: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    """As when each frame was written on its own: a writable socket takes the first whatever its size."""
    broker, hub, batch = room
    ada = await live_member(broker, hub, batch, max_queue_bytes=4096)
    await broker.publish(Note(room=ROOM, text="x" * 10_000))  # a join's snapshot can be this
    await broker.publish(Note(room=ROOM, text="small"))  # and what follows it in the same iteration
    await turns()
    assert ada.session.close_code is None
    [[big, small]] = ada.calls  # one write (a 10 KB frame's header is 4 bytes: `texts` reads 2)
    assert b'"text":"' + b"x" * 10_000 + b'"' in big and b'"small"' in small


async def test_a_failed_write_closes_the_socket_with_1011_so_the_client_recovers(
    room: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    broker, hub, batch = room
    ada, bob = await live_member(broker, hub, batch), await live_member(broker, hub, batch)
    ada.connection.transport.broken = True
    await broker.publish(Note(room=ROOM, text="lost"))
    await turns()
    assert ada.session.close_code == 1011
    assert bob.connection.transport.texts(0) == ["lost"], "one broken socket keeps nobody else's frames back"
    await ada.session.stop()


def written_events(hub: Hub) -> float:
    """Events whose fan-out the process has observed as written (`roomcast_fanout_latency_seconds`'s count)."""
    return next(
        sample.value
        for metric in hub.metrics.fanout_latency.collect()
        for sample in metric.samples
        if sample.name.endswith("_count")
    )


async def test_a_big_rooms_events_close_together_reach_each_member_in_one_write_per_window(
    coalescing: tuple[MemoryBroker, Hub, WriteBatch],
) -> None:
    broker, hub, batch = coalescing
    members = [await live_member(broker, hub, batch) for _ in range(LARGE_FLUSH)]
    first = members[0]
    await broker.publish(Note(room=ROOM, text="one"))
    await turns()
    assert all(member.calls for member in members), "the first event after a quiet spell is written at once"
    assert written_events(hub) == 1
    await broker.publish(Note(room=ROOM, text="two"))
    await turns()
    assert len(first.calls) == 1, "an event right after a large flush waits for the window"
    assert written_events(hub) == 1, "its fan-out is not observed as written before it is"
    await broker.publish(Note(room=ROOM, text="three"))
    await asyncio.sleep(WINDOW_S / 4)
    assert len(first.calls) == 1, "still within the window"
    await asyncio.sleep(WINDOW_S)  # the window is over: both went out together
    for member in members:
        assert [member.connection.transport.texts(n) for n in range(len(member.calls))] == [["one"], ["two", "three"]]
    assert written_events(hub) == 3
    await asyncio.sleep(WINDOW_S * 1.5)  # a quiet spell
    await broker.publish(Note(room=ROOM, text="four"))
    await turns()
    assert first.connection.transport.texts(2) == ["four"], "after a quiet spell the next event is not held"


async def test_a_small_rooms_events_are_never_held(coalescing: tuple[MemoryBroker, Hub, WriteBatch]) -> None:
    broker, hub, batch = coalescing
    ada, bob = await live_member(broker, hub, batch), await live_member(broker, hub, batch)
    for text in ("one", "two", "three"):
        await broker.publish(Note(room=ROOM, text=text))
        await turns()
        assert ada.connection.transport.texts(len(ada.calls) - 1) == [text]
    assert len(ada.calls) == len(bob.calls) == 3


async def test_an_expiring_credential_closes_its_socket_with_4401_within_a_second() -> None:
    async with processes(1) as (_broker, [process]):
        lasting = await process.connect("bob")
        leaving = await process.connect("carol@60")
        expiring = await process.connect("ada@0.2")
        assert len(process.gateway.control.expiries) == 2
        await leaving.disconnect()
        assert len(process.gateway.control.expiries) == 1, "a socket that ends leaves the timer"
        started = time.monotonic()
        assert await expiring.wait_closed(timeout=3) == 4401
        assert time.monotonic() - started < 1.5
        assert lasting.close_code is None
        await lasting.disconnect()
        await expiring.disconnect()
        assert len(process.gateway.control.expiries) == 0


async def test_releasing_the_handshake_keeps_every_incoming_message_in_order() -> None:
    connection = Connection()
    connection.request, connection.response = object(), object()  # type: ignore[attr-defined]
    connection.scope = {"headers": [(b"origin", b"https://example.org")], "path": "/ws"}  # type: ignore[attr-defined]
    connection.queue = asyncio.Queue()  # type: ignore[attr-defined]
    connection.queue.put_nowait({"type": "websocket.receive", "text": "first"})  # type: ignore[attr-defined]
    DirectSocket(connection).release_handshake()
    assert connection.request is None and connection.response is None  # type: ignore[attr-defined]
    assert connection.scope == {"headers": [], "path": "/ws"}  # type: ignore[attr-defined]
    inbox = connection.queue  # type: ignore[attr-defined]
    assert not isinstance(inbox, asyncio.Queue) and inbox.qsize() == 1
    assert (await inbox.get())["text"] == "first" and inbox.empty()
    waiting = asyncio.ensure_future(inbox.get())
    await turns()
    inbox.put_nowait({"type": "websocket.receive", "text": "second"})
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert (await waiting)["text"] == "second"
    assert (await inbox.get())["type"] == "websocket.disconnect"
