"""PITFALL 1: Redis restarts under two server processes. Nobody is left with a silent gap."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import psutil
import redis.asyncio as aioredis
import redis.exceptions

from channels.broker import Broker
from server.embedded import EmbeddedServices, free_port
from tests.realtime.test_resilience import Note, assert_no_silent_gap
from tests.support import eventually
from tests.wsclient import World, connect


async def test_redis_restart_without_persistence_gives_a_new_epoch_and_no_silent_gap(
    start_servers,
    world: World,
    redis_prefix: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    private = EmbeddedServices(tmp_path)
    port = free_port()
    redis_url = private.start_redis(port)
    try:
        servers = start_servers(2, REDIS_URL=redis_url, ROOMCAST_IN_PROCESS_WORKER="1")
        owner = await world.user("Olive")
        meeting = await world.meeting(owner)
        room = f"meeting:{meeting}"
        client = aioredis.Redis.from_url(redis_url)
        broker = Broker(client, redis_prefix)

        async def publish(count: int) -> int:
            last = 0
            for n in range(count):
                while True:
                    try:
                        last = await broker.publish(Note(room=room, text=str(n)))
                        break
                    except (redis.exceptions.ConnectionError, OSError):
                        await asyncio.sleep(0.1)  # Redis is down: a real publisher would retry too
            return last

        async with connect(servers[0].ws_url, owner.token) as a, connect(servers[1].ws_url, owner.token) as b:
            first = await a.join(room)
            await b.join(room)
            await publish(20)

            private.stop_redis(kill=True)  # a crash: nothing flushed
            shutil.rmtree(tmp_path / "redis")  # and nothing persisted
            async with httpx.AsyncClient() as http:
                down = await http.get(servers[0].url + "/health/ready")
            assert down.status_code == 503
            assert "redis" in down.json()["error"]["message"]
            # nothing spins while Redis is away (SAQ's worker retried a failed dequeue at once: a whole core)
            processes = [psutil.Process(server.process.pid) for server in servers]
            before = [sum(p.cpu_times()[:2]) for p in processes]
            await asyncio.sleep(2)
            busy = [(sum(p.cpu_times()[:2]) - b) / 2 for p, b in zip(processes, before, strict=True)]
            assert max(busy) < 0.5, f"server CPU while Redis is down: {busy}"
            private.start_redis(port)

            final = await publish(30)
            for ws in (a, b):
                await ws.wait_count(lambda f, final=final: f.get("room") == room and f.get("seq") == final, 1, 20)
                told = [f for f in ws.frames if f["type"] == "joined" and "ref" not in f and f["room"] == room]
                assert told, "the server said it may have missed events"
                assert told[-1]["recovered"] is False
                assert told[-1]["epoch"] != first["epoch"], "a lost counter means a new epoch"
                assert_no_silent_gap(ws, room, final)

            async def ready_again() -> bool:
                async with httpx.AsyncClient() as http:
                    codes = [(await http.get(server.url + "/health/ready")).status_code for server in servers]
                return codes == [200, 200]

            await eventually(ready_again, timeout=10)

            # a stale `since` from the old epoch is never replayed against the new one
            async with connect(servers[1].ws_url, owner.token) as late:
                rejoined = await late.join(room, since=10, epoch=first["epoch"])
                assert rejoined["recovered"] is False
                assert "snapshot" in rejoined
        await client.aclose()
    finally:
        private.stop_redis()
