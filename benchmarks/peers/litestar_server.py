"""Litestar peer: `ChannelsPlugin` on `RedisChannelsPubSubBackend`, under uvicorn.

The pattern of Litestar's channels docs: the plugin is injected into a WebSocket handler, which
subscribes with `channels.start_subscription(...)` and forwards events with
`subscriber.run_in_background(socket.send_text)` while it reads the socket; publishing is
`channels.publish(data, channels=...)`. A client sends `{"type": "join", "room", "ref"}` (answered
with `joined` once the subscription is live) and then `{"type": "ask", "room", "text"}`; each ask
is published to the room's channel as a `question.created` of the same shape and size as
roomcast's. A publisher may ask without joining.

    python -m benchmarks.peers.litestar_server --port 18603 --redis redis://127.0.0.1:6379/0 --channel-prefix NAME
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, WebSocket, get, websocket
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis

from benchmarks.baseline import question_event

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def build(redis_url: str, prefix: str) -> Litestar:
    """`prefix` namespaces this run's channels on the shared Redis (the pub/sub backend publishes to bare names)."""

    def channel(room: str) -> str:
        return f"{prefix}:{room}"

    async def serve_asks(socket: WebSocket[Any, Any, Any], channels: ChannelsPlugin, frame: dict[str, Any]) -> None:
        while True:
            if frame.get("type") == "ask":
                room = str(frame["room"])
                channels.publish(_encode(question_event(room, str(frame["text"]), "litestar", "guest")), channel(room))
            frame = _decode(await socket.receive_text())

    @websocket("/ws")
    async def room_socket(socket: WebSocket[Any, Any, Any], channels: ChannelsPlugin) -> None:
        await socket.accept()
        frame = _decode(await socket.receive_text())
        if frame.get("type") != "join":
            await serve_asks(socket, channels, frame)
            return
        room = str(frame["room"])
        async with (
            channels.start_subscription(channel(room)) as subscriber,
            subscriber.run_in_background(socket.send_text),
        ):
            await socket.send_text(_encode({"type": "joined", "room": room, "ref": frame.get("ref")}))
            await serve_asks(socket, channels, {})

    @get("/health", sync_to_thread=False)
    def health() -> str:
        return "ok"

    backend = RedisChannelsPubSubBackend(redis=Redis.from_url(redis_url))
    plugin = ChannelsPlugin(backend=backend, arbitrary_channels_allowed=True)
    return Litestar(route_handlers=[room_socket, health], plugins=[plugin], logging_config=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="Redis URL")
    parser.add_argument("--channel-prefix", required=True, help="prefix of this run's channel names")
    args = parser.parse_args()
    uvicorn.run(
        build(args.redis, args.channel_prefix),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=8192,
    )
