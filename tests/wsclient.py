"""Test helpers for roomcast's WebSocket protocol: a small client, and real users/meetings/tokens.

Everything here talks to real things: real `roomcast serve` processes (the `start_servers`
fixture), this test's own database and Redis prefix. Nothing is mocked.

People and meetings, written straight into the test's database (no REST needed), with tokens
signed by the same secret the servers use (`support.server_environment`):

    world = World(database_url, settings)          # `database_url` and `settings` fixtures
    owner = await world.user("Olive")              # Person(id, name, token): an access token
    meeting_id = await world.meeting(owner)        # str; status "live", default settings
    await world.presenter(meeting_id, await world.user("Pat"))
    await world.participant(meeting_id, someone)
    guest = await world.guest(meeting_id, "Gus")   # Person with a guest token for that meeting

The client (JSON by default, MessagePack with `msgpack=True`):

    async with connect(server.ws_url, owner.token) as ws:     # sends auth, waits for welcome
        ws.welcome                                            # the welcome frame (dict)
        joined = await ws.join(f"meeting:{meeting_id}")       # the `joined` frame; AssertionError on `error`
        answer = await ws.request({"type": "ask", "room": room, "text": "Why?"})
                                                              # adds a fresh `ref`, returns the frame
                                                              # answering it (reply / joined / error)
        event = await ws.wait_for(lambda f: f["type"] == "question.created")
                                                              # first not-yet-taken frame matching
        ws.events(room)                                       # every event of a room so far, in order
        ws.frames                                             # every frame received, in order
        code = await ws.wait_closed()                         # the close code the server sent

    connect(url, token=None)            # no auth: send frames yourself (`ws.send`, `ws.send_raw`)
    connect(url, token, read=False)     # a client that does not read (slow-consumer tests); call
                                        # `ws.start_reading()` later (`await ws.stop_reading()` pauses
                                        # one that did); `max_queue` sets how much the websockets
                                        # library buffers before it stops reading the socket
    connect(url, token, origin="https://evil.example")

`test_broker(redis_url, prefix)` is a real `Broker` in the test process on the servers' Redis
and prefix: `await broker.publish(SomeEvent(room=..., ...))` reaches the servers' clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import ClientConnection

from channels.broker import Broker
from server.auth.tokens import issue_access_token, issue_guest_token
from server.meetings.codes import new_join_code
from server.settings import Settings

Frame = dict[str, Any]
Predicate = Callable[[Frame], bool]

_refs = itertools.count(1)


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    token: str


class World:
    """Users, meetings, roles and tokens made directly in one test's database."""

    def __init__(self, database_url: str, settings: Settings) -> None:
        self.database_url = database_url
        self.settings = settings

    async def _execute(self, sql: str, *args: Any) -> None:
        connection = await asyncpg.connect(self.database_url)
        try:
            await connection.execute(sql, *args)
        finally:
            await connection.close()

    async def user(self, name: str = "Ada") -> Person:
        user_id = uuid.uuid4()
        await self._execute(
            "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)",
            user_id,
            f"{user_id.hex[:12]}@example.com",
            name,
        )
        return Person(str(user_id), name, issue_access_token(self.settings, user_id))

    async def meeting(self, owner: Person, *, title: str = "Standup", status: str = "live") -> str:
        meeting_id = uuid.uuid4()
        await self._execute(
            "INSERT INTO meetings (id, owner, title, status, join_code) VALUES ($1, $2, $3, $4, $5)",
            meeting_id,
            uuid.UUID(owner.id),
            title,
            status,
            new_join_code(),
        )
        return str(meeting_id)

    async def _member(self, meeting_id: str, person: Person, role: str) -> None:
        await self._execute(
            """INSERT INTO meeting_members (id, meeting, "user", role) VALUES ($1, $2, $3, $4)
               ON CONFLICT (meeting, "user") DO UPDATE SET role = $4""",
            uuid.uuid4(),
            uuid.UUID(meeting_id),
            uuid.UUID(person.id),
            role,
        )

    async def presenter(self, meeting_id: str, person: Person) -> Person:
        await self._member(meeting_id, person, "presenter")
        return person

    async def participant(self, meeting_id: str, person: Person) -> Person:
        await self._member(meeting_id, person, "participant")
        return person

    async def guest(self, meeting_id: str, name: str = "Guest") -> Person:
        user_id = uuid.uuid4()
        await self._execute(
            "INSERT INTO users (id, display_name, guest_meeting_id) VALUES ($1, $2, $3)",
            user_id,
            name,
            uuid.UUID(meeting_id),
        )
        return Person(str(user_id), name, issue_guest_token(self.settings, user_id, uuid.UUID(meeting_id)))


class WsClient:
    """One protocol client over a real socket; a background task collects every frame it receives."""

    def __init__(self, connection: ClientConnection, *, msgpack: bool) -> None:
        self.connection = connection
        self.msgpack = msgpack
        self.frames: list[Frame] = []
        self.arrivals: list[float] = []
        """`time.monotonic()` when each frame of `frames` arrived."""
        self.welcome: Frame | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def stop_reading(self) -> None:
        """Stop consuming: the websockets library buffers `max_queue` frames, then stops reading the socket."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                if isinstance(message, bytes):
                    frame = msgspec.msgpack.decode(message) if self.msgpack else msgspec.json.decode(message)
                else:
                    frame = msgspec.json.decode(message)
                self.frames.append(frame)
                self.arrivals.append(time.monotonic())
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        rcvd = self.connection.protocol.close_rcvd
        self.close_code = rcvd.code if rcvd is not None else 1006
        self.close_reason = rcvd.reason if rcvd is not None else ""
        self._changed.set()

    # sending
    async def send(self, frame: Frame) -> None:
        if self.msgpack:
            await self.connection.send(msgspec.msgpack.encode(frame))
        else:
            await self.connection.send(msgspec.json.encode(frame).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self.connection.send(data)

    async def request(self, frame: Frame, timeout: float = 5.0) -> Frame:
        """Send `frame` with a fresh `ref` (unless it has one) and return the frame answering it."""
        ref = frame.setdefault("ref", f"r{next(_refs)}")
        await self.send(frame)
        return await self.wait_for(lambda f: f.get("ref") == ref, timeout)

    async def join(self, room: str, since: int | None = None, epoch: str | None = None, timeout: float = 5.0) -> Frame:
        frame: Frame = {"type": "join", "room": room}
        if since is not None:
            frame["since"] = since
        if epoch is not None:
            frame["epoch"] = epoch
        answer = await self.request(frame, timeout)
        assert answer["type"] == "joined", answer
        return answer

    # receiving
    async def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> Frame:
        """The first frame received (ever) that matches and was not returned by an earlier `wait_for`."""
        deadline = time.monotonic() + timeout
        while True:
            for index, frame in enumerate(self.frames):
                if index not in self._taken and predicate(frame):
                    self._taken.add(index)
                    return frame
            if self.close_code is not None:
                raise AssertionError(f"closed with {self.close_code} ({self.close_reason}); frames: {self.frames[-5:]}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout} s; last frames: {self.frames[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_count(self, predicate: Predicate, count: int, timeout: float = 10.0) -> list[Frame]:
        """Wait until `count` frames match (without taking them); returns them in order."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [f for f in self.frames if predicate(f)]
            if len(matching) >= count:
                return matching
            if self.close_code is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(matching)}/{count} matching frames (closed: {self.close_code}); last: {self.frames[-3:]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))

    def events(self, room: str, kind: str | None = None) -> list[Frame]:
        """Every event (a frame with `seq`, `joined` aside) of `room` received so far, optionally of one type."""
        return [
            f
            for f in self.frames
            if f.get("room") == room and "seq" in f and f["type"] != "joined" and (kind is None or f["type"] == kind)
        ]

    async def wait_closed(self, timeout: float = 10.0) -> int:
        """The close code the server sent (1006 if the connection just dropped)."""
        self.start_reading()
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        assert self.close_code is not None
        return self.close_code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


@contextlib.asynccontextmanager
async def connect(
    url: str,
    token: str | None = None,
    *,
    msgpack: bool = False,
    subprotocols: list[str] | None = None,
    origin: str | None = None,
    read: bool = True,
    max_queue: int | None = 64,
    max_size: int | None = 1024 * 1024,
    rcvbuf: int | None = None,
    timeout: float = 5.0,
) -> AsyncIterator[WsClient]:
    """Open a client; with `token`, authenticate and wait for `welcome` (in `client.welcome`).

    `rcvbuf` caps the client socket's kernel receive buffer (otherwise it grows to tens of MB
    on loopback), so a client that stops reading pushes back on the server quickly.
    """
    if subprotocols is None:
        subprotocols = ["roomcast.v1.msgpack"] if msgpack else ["roomcast.v1.json"]
    sock = None
    if rcvbuf is not None:
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
    connection = await websockets.connect(
        url,
        sock=sock,
        subprotocols=subprotocols or None,  # type: ignore[arg-type]  # [] offers none
        origin=origin,  # type: ignore[arg-type]
        max_queue=max_queue,
        max_size=max_size,
        open_timeout=timeout,
        ping_interval=None,
    )
    client = WsClient(connection, msgpack=msgpack)
    try:
        if read:
            client.start_reading()
        if token is not None:
            await client.send({"type": "auth", "token": token})
            if read:
                client.welcome = await client.wait_for(lambda f: f["type"] == "welcome", timeout)
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def test_broker(redis_url: str, prefix: str) -> AsyncIterator[Broker]:
    """A real Broker in the test process, publishing on the servers' Redis and prefix."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield Broker(client, prefix)
    finally:
        await client.aclose()


test_broker.__test__ = False  # type: ignore[attr-defined]  # not a test, despite the name
