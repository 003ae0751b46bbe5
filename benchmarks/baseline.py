"""A bare fan-out baseline: the least a Python WebSocket server can do for roomcast's clients.

It speaks just enough of roomcast's protocol (SPEC section 4) for the load generator to drive it
through the same code path: `auth` -> `welcome`, `join` -> `joined` (with `seq`), `leave`,
`ping` -> `pong`, and `ask` -> one `question.created` event of the same shape and size as
roomcast's, broadcast to the room with `websockets.broadcast()`, then a `reply` to the asker.
Any token is accepted: there is no database, no Redis and no second process to tell, so each
process is its own island (the load generator publishes to every baseline process).
`GET /metrics` answers connections and rooms, so the churn scenario can read it too.

    python -m benchmarks.baseline --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import http
import signal
import uuid
from typing import Any

import msgspec
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

HEARTBEAT_S = 25
"""Same default as roomcast's `ROOMCAST_HEARTBEAT_S`."""

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


class Room:
    __slots__ = ("members", "seq")

    def __init__(self) -> None:
        self.members: set[ServerConnection] = set()
        self.seq = 0


ROOMS: dict[str, Room] = {}
CONNECTIONS: set[ServerConnection] = set()
FRAMES_OUT = 0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def question_event(room: str, text: str, user_id: str, name: str) -> dict[str, Any]:
    """roomcast's `question.created` in a meeting room, the same fields in the same order, without `seq`.

    The peers in benchmarks/peers/ broadcast this too, so every server under test sends events of one size.
    """
    now = _now()
    return {
        "type": "question.created",
        "room": room,
        "question": {
            "id": str(uuid.uuid4()),
            "meeting_id": room.removeprefix("meeting:")[:36],
            "text": text,
            "status": "live",
            "pinned": False,
            "votes": 0,
            "author": {"id": user_id, "display_name": name},
            "anonymous": False,
            "answer": None,
            "created_at": now,
            "updated_at": now,
            "answered_at": None,
            "flagged": False,
            "dismiss_reason": None,
            "merged_into": None,
        },
    }


def question_created(room: str, seq: int, text: str, user_id: str, name: str) -> bytes:
    """The same fields, in the same order, as roomcast's `question.created` in a meeting room."""
    event = question_event(room, text, user_id, name)
    event["seq"] = seq
    return _encode(event)


async def handler(ws: ServerConnection) -> None:
    global FRAMES_OUT
    CONNECTIONS.add(ws)
    joined: set[str] = set()
    user_id, name = str(uuid.uuid4()), "guest"
    try:
        async for message in ws:
            try:
                frame = _decode(message)
            except msgspec.DecodeError:
                await ws.send(_encode({"type": "error", "code": "bad_request", "message": "not JSON"}).decode())
                continue
            kind, ref = frame.get("type"), frame.get("ref")
            out: dict[str, Any]
            if kind == "auth":
                out = {
                    "type": "welcome",
                    "session_id": str(uuid.uuid4()),
                    "user": {"id": user_id, "display_name": name, "guest": True},
                    "protocol": 1,
                    "heartbeat_s": HEARTBEAT_S,
                    "unread_notifications": 0,
                }
            elif kind == "join":
                room_name = str(frame.get("room"))
                room = ROOMS.setdefault(room_name, Room())
                room.members.add(ws)
                joined.add(room_name)
                out = {"type": "joined", "room": room_name, "seq": room.seq, "epoch": "baseline", "recovered": False}
                out["snapshot"] = {"questions": [], "presence": {"count": len(room.members)}}
            elif kind == "leave":
                room_name = str(frame.get("room"))
                _leave(ws, room_name)
                joined.discard(room_name)
                out = {"type": "reply", "data": {}}
            elif kind == "ask":
                room_name = str(frame.get("room"))
                room = ROOMS.setdefault(room_name, Room())
                room.seq += 1
                event = question_created(room_name, room.seq, str(frame.get("text")), user_id, name).decode()
                websockets.broadcast(room.members, event)
                FRAMES_OUT += len(room.members)
                out = {"type": "reply", "data": {"question": {"room": room_name, "seq": room.seq}}}
            elif kind == "ping":
                out = {"type": "pong"}
            else:
                out = {"type": "error", "code": "bad_request", "message": f"unknown type {kind!r}"}
            if ref is not None:
                out["ref"] = ref
            await ws.send(_encode(out).decode())
    except websockets.ConnectionClosed:
        pass
    finally:
        CONNECTIONS.discard(ws)
        for room_name in joined:
            _leave(ws, room_name)


def _leave(ws: ServerConnection, room_name: str) -> None:
    room = ROOMS.get(room_name)
    if room is not None:
        room.members.discard(ws)
        if not room.members:
            del ROOMS[room_name]


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/metrics":
        body = (
            f"roomcast_ws_connections {len(CONNECTIONS)}\n"
            f"roomcast_rooms {len(ROOMS)}\n"
            f"roomcast_subscribers {sum(len(r.members) for r in ROOMS.values())}\n"
            f"roomcast_frames_out_total {FRAMES_OUT}\n"
        )
        return connection.respond(http.HTTPStatus.OK, body)
    if request.path in ("/health/live", "/health/ready"):
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    return None


def _stopper(stop: asyncio.Future[None]) -> Any:
    def set_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    return set_stop


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, _stopper(stop))
    async with serve(
        handler,
        host,
        port,
        compression=None,
        max_size=64 * 1024,
        ping_interval=HEARTBEAT_S,
        ping_timeout=2 * HEARTBEAT_S,
        process_request=process_request,
        backlog=4096,
    ):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio (roomcast's uvicorn runs on uvloop)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.no_uvloop:
            asyncio.run(main(args.host, args.port))
        else:
            import uvloop

            uvloop.run(main(args.host, args.port))
