"""Publish-to-delivery latency of one room event to 1,000 subscribers on one server process.

    .venv/bin/python -m benchmarks.fanout_latency [--subscribers 1000] [--events 200] [--payload 300]

Starts one real `roomcast serve` (fresh migrated database, its own Redis prefix; PostgreSQL and
Redis found like the tests find them), opens N WebSocket clients in this process, all joined to
one meeting room, then publishes events one at a time through a real `Broker` (the same Lua call
a REST or frame handler makes), waiting for every client to have it before the next.

Reported:
- client-observed: publish call -> frame received by a client (this process's clock on both
  ends), per delivery and per event until its last subscriber has it. It includes the client
  side's own cost of reading N sockets in one Python process, so it is an upper bound.
- server-side: the server's `roomcast_fanout_latency_seconds` histogram (publish -> written to
  the socket), read from `/metrics`, percentiles interpolated within its buckets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import time
import uuid
from typing import Any

import httpx
import msgspec
import redis.asyncio as aioredis
import websockets

from channels.broker import Broker
from channels.protocol import Event
from server.settings import Settings
from tests.support import (
    DatabaseFactory,
    ServerProcess,
    delete_prefix,
    discover_services,
    server_environment,
    test_secret,
)
from tests.wsclient import World


class Tick(Event, tag="bench.tick", kw_only=True):
    n: int
    body: str


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def histogram_percentiles(text: str, name: str, qs: tuple[float, ...]) -> dict[float, float]:
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0
    result: dict[float, float] = {}
    for q in qs:
        target, previous_le, previous_count = q * total, 0.0, 0.0
        for le, count in buckets:
            if count >= target:
                span = count - previous_count
                fraction = (target - previous_count) / span if span else 1.0
                result[q] = previous_le + (min(le, previous_le * 4 or le) - previous_le) * fraction
                break
            previous_le, previous_count = le, count
    return result


async def run(subscribers: int, events: int, payload: int) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    services = discover_services()
    databases = DatabaseFactory(services.database_url)
    await databases.create_template()
    database_url = await databases.create()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = server_environment(database_url, services.redis_url, prefix, ROOMCAST_LOG_LEVEL="warning")
    server = ServerProcess(env=env)
    server.start()
    redis = aioredis.Redis.from_url(services.redis_url)
    clients: list[websockets.ClientConnection] = []
    try:
        await asyncio.to_thread(server.wait_ready)
        settings = Settings(secret_key=test_secret(prefix))
        world = World(database_url, settings)
        owner = await world.user("Bench")
        room = f"meeting:{await world.meeting(owner)}"

        async def open_one() -> websockets.ClientConnection:
            ws = await websockets.connect(server.ws_url, ping_interval=None, max_queue=None, open_timeout=30)
            await ws.send(msgspec.json.encode({"type": "auth", "token": owner.token}).decode())
            await ws.recv()  # welcome
            await ws.send(msgspec.json.encode({"type": "join", "room": room, "ref": "j"}).decode())
            while msgspec.json.decode(await ws.recv()).get("type") != "joined":
                pass
            return ws

        for start in range(0, subscribers, 50):  # a gentle ramp: 50 handshakes at a time
            clients.extend(await asyncio.gather(*(open_one() for _ in range(start, min(subscribers, start + 50)))))

        received: dict[int, list[float]] = {}
        all_in: dict[int, asyncio.Event] = {}

        async def read(ws: websockets.ClientConnection) -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for message in ws:
                    now = time.perf_counter()
                    if '"bench.tick"' not in message:
                        continue
                    n = msgspec.json.decode(message)["n"]
                    times = received.setdefault(n, [])
                    times.append(now)
                    if len(times) == subscribers:
                        all_in[n].set()

        readers = [asyncio.create_task(read(ws)) for ws in clients]
        broker = Broker(redis, prefix)
        body = "x" * payload
        published: dict[int, float] = {}
        for n in range(-20, events):  # 20 warm-up events first
            all_in[n] = asyncio.Event()
            published[n] = time.perf_counter()
            await broker.publish(Tick(room=room, n=n, body=body))
            await asyncio.wait_for(all_in[n].wait(), 30)
        deliveries = [(t - published[n]) * 1000 for n in range(events) for t in received[n]]
        last = [(max(received[n]) - published[n]) * 1000 for n in range(events)]
        for reader in readers:
            reader.cancel()
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(server.url + "/metrics")).text
        server_side = histogram_percentiles(metrics, "roomcast_fanout_latency_seconds", (0.5, 0.99))
        return {
            "subscribers": subscribers,
            "events": events,
            "payload_bytes": payload,
            "delivery_p50_ms": round(percentile(deliveries, 0.5), 2),
            "delivery_p99_ms": round(percentile(deliveries, 0.99), 2),
            "delivery_mean_ms": round(statistics.fmean(deliveries), 2),
            "last_subscriber_p50_ms": round(percentile(last, 0.5), 2),
            "last_subscriber_p99_ms": round(percentile(last, 0.99), 2),
            "server_write_p50_ms (histogram, incl. warm-up)": round(server_side.get(0.5, float("nan")) * 1000, 2),
            "server_write_p99_ms (histogram, incl. warm-up)": round(server_side.get(0.99, float("nan")) * 1000, 2),
        }
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
        server.stop()
        await redis.aclose()
        await delete_prefix(services.redis_url, prefix)
        await databases.drop(database_url)
        await databases.drop_template()
        services.stop()
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--payload", type=int, default=300, help="bytes of text in each event")
    args = parser.parse_args()
    result = asyncio.run(run(args.subscribers, args.events, args.payload))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
