"""python-socketio peer: an ASGI Socket.IO server under uvicorn with `AsyncRedisManager`.

The setup python-socketio's docs give for several processes: `socketio.AsyncServer(async_mode="asgi",
client_manager=socketio.AsyncRedisManager(url, channel=...))` wrapped in `socketio.ASGIApp` and
served by uvicorn (uvloop and httptools, uvicorn's default WebSocket implementation). Clients
`join` one room (acknowledged); each `ask` is broadcast to that room as a `question.created`
event of the same shape and size as roomcast's, through Redis to every process.

    python -m benchmarks.peers.socketio_server --port 18601 --redis redis://127.0.0.1:6379/0 --channel NAME
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio  # type: ignore[import-untyped]
import uvicorn

from benchmarks.baseline import question_event


def build(redis_url: str, channel: str) -> Any:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)

    @sio.on("join")  # type: ignore[untyped-decorator]
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True  # the client's acknowledgement: it is in the room from now on

    @sio.on("ask")  # type: ignore[untyped-decorator]
    async def ask(sid: str, data: dict[str, Any]) -> None:
        room = str(data["room"])
        await sio.emit("question.created", question_event(room, str(data["text"]), sid, "guest"), room=room)

    async def health(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok\n"})

    return socketio.ASGIApp(sio, other_asgi_app=health)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="Redis URL")
    parser.add_argument("--channel", required=True, help="the Redis pub/sub channel of this run")
    args = parser.parse_args()
    uvicorn.run(
        build(args.redis, args.channel),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=8192,
    )
