"""The realtime core in one test process: a gateway on `channels.memory`, and clients as fake ASGI sockets.

No Redis, no subprocess, no network: a `FakeSocket` feeds `Gateway.handle` ASGI messages and
records what it sends (the ASGI writer path: `send` is an ordinary coroutine, so the direct
path is never taken here). `stall()` makes its `send` block, as a peer that stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from channels.config import GatewayConfig
from channels.flood import RateLimit
from channels.gateway import Gateway
from channels.memory import MemoryBroker, MemoryPubSub
from channels.protocol import ErrorCode, Event, FrameError
from channels.rooms import UserRoomPolicy
from channels.seams import Grant, Identity, SessionView

Frame = dict[str, Any]


class Note(Event, tag="test.note", kw_only=True):
    text: str


class OpenRooms:
    """`open:<name>` rooms anyone may join (`closed:` ones nobody may); the snapshot counts how often it was built."""

    def __init__(self) -> None:
        self.snapshots = 0
        self.fail_snapshots = False

    def owns(self, room: str) -> bool:
        return room.startswith(("open:", "closed:"))

    async def authorize(self, session: SessionView, room: str) -> Grant:
        if room.startswith("closed:"):
            raise FrameError(ErrorCode.FORBIDDEN, "closed room")
        return Grant(room=room, role="member")

    async def snapshot(self, session: SessionView, room: str) -> Any:
        if self.fail_snapshots:
            raise RuntimeError("the database is down")
        self.snapshots += 1
        return {"built": self.snapshots, "padding": "x" * 2000}

    def tracks_presence(self, room: str) -> bool:
        return False


async def authenticate(token: str) -> Identity | None:
    """`user:<id>` tokens stand for that user (`user:<id>@<seconds>` ones expire then); anything else for nobody."""
    if not token.startswith("user:"):
        return None
    user, _, lifetime = token[5:].partition("@")
    expires_at = time.time() + float(lifetime) if lifetime else None
    return Identity(user_id=user, display_name=user, guest=False, credential=f"cred:{user}", expires_at=expires_at)


class FakeSocket:
    """One client connection driven through `Gateway.handle`."""

    def __init__(self, gateway: Gateway, *, address: str = "10.0.0.1", binary: bool = False) -> None:
        self.gateway = gateway
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.frames: list[Frame] = []
        self.close_code: int | None = None
        self.accepted = False
        self._open = asyncio.Event()
        self._open.set()
        self._changed = asyncio.Event()
        scope = {
            "type": "websocket",
            "path": "/ws",
            "headers": [],
            "client": (address, 40000),
            "subprotocols": ["roomcast.v1.msgpack"] if binary else ["roomcast.v1.json"],
        }
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(gateway.handle(scope, self._receive, self._send))  # type: ignore[arg-type]

    async def _receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        await self._open.wait()
        self.sent.append(message)
        if message["type"] == "websocket.accept":
            self.accepted = True
        elif message["type"] == "websocket.send":
            data = message.get("text") or message.get("bytes")
            self.frames.append(msgspec.json.decode(data) if "text" in message else msgspec.msgpack.decode(data))
        elif message["type"] == "websocket.close":
            self.close_code = message["code"]
        self._changed.set()

    def stall(self) -> None:
        """Stop taking frames: `send` blocks until `resume`."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def send(self, frame: Frame) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": msgspec.json.encode(frame).decode()})

    def send_raw(self, message: dict[str, Any]) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", **message})

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 2.0, start: int = 0) -> Frame:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames[start:]:
                    if predicate(frame):
                        return frame
                self._changed.clear()
                await self._changed.wait()

    async def request(self, frame: Frame, timeout: float = 2.0) -> Frame:
        ref = f"r{len(self.inbox._queue) + len(self.frames)}-{id(frame)}"  # type: ignore[attr-defined]
        self.send({**frame, "ref": ref})
        return await self.wait_for(lambda f: f.get("ref") == ref, timeout)

    async def join(self, room: str, **fields: Any) -> Frame:
        return await self.request({"type": "join", "room": room, **fields})

    async def wait_closed(self, timeout: float = 2.0) -> int:
        async with asyncio.timeout(timeout):
            while self.close_code is None:
                self._changed.clear()
                await self._changed.wait()
        return self.close_code

    def events(self, room: str) -> list[Frame]:
        return [f for f in self.frames if f.get("room") == room and "seq" in f and f["type"] != "joined"]

    async def disconnect(self) -> None:
        self.resume()
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 2)


class Process:
    """One "server process": a gateway on its own `MemoryPubSub` of a shared `MemoryBroker`."""

    def __init__(self, broker: MemoryBroker, **config: Any) -> None:
        self.broker = broker
        self.pubsub: MemoryPubSub = broker.pubsub()
        self.policy = OpenRooms()
        self.gateway = Gateway(
            GatewayConfig(
                stream=broker,
                pubsub=self.pubsub,
                authenticator=authenticate,
                policies=[UserRoomPolicy(), self.policy],
                **config,
            )
        )
        self.sockets: list[FakeSocket] = []

    async def connect(self, user: str = "ada", *, authenticate: bool = True, **kwargs: Any) -> FakeSocket:
        socket = FakeSocket(self.gateway, **kwargs)
        self.sockets.append(socket)
        if authenticate:
            socket.send({"type": "auth", "token": f"user:{user}"})
            await socket.wait_for(lambda f: f["type"] == "welcome")
        return socket


@contextlib.asynccontextmanager
async def processes(count: int = 1, **config: Any) -> AsyncIterator[tuple[MemoryBroker, list[Process]]]:
    broker = MemoryBroker()
    started = [Process(broker, **config) for _ in range(count)]
    for process in started:
        await process.gateway.start()
    try:
        yield broker, started
    finally:
        for process in started:
            for socket in process.sockets:
                await socket.disconnect()
            await process.gateway.stop()


def fast_limits() -> RateLimit:
    return RateLimit(per_second=5.0, burst=5, strikes=3)
