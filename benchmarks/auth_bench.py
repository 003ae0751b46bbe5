"""Auth figures: login latency (the argon2id cost) and register/login throughput.

    .venv/bin/python -m benchmarks.auth_bench                       # starts its own roomcast serve
    .venv/bin/python -m benchmarks.auth_bench --url http://host:8000 --users 50

Without `--url` it starts one `roomcast serve` on a fresh database of the local PostgreSQL
(`BENCH_PG_URL`) and the local Redis (`BENCH_REDIS_URL`) with the per-address register limit
lifted, and removes both afterwards. Against `--url`, the server's own limits apply: every
request comes from one address, so `ROOMCAST_REGISTER_PER_HOUR` (default 1000) caps `--users`.

Phases, each printed as one row:
1. register `--users` accounts, `--concurrency` at a time (argon2 hash + insert + session);
2. `--samples` logins one after another: the latency of one login on an idle server;
3. `--users` logins, `--concurrency` at a time (argon2 verify + session);
4. `GET /me` with an access token, `--concurrency` at a time: the cost of auth without argon2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx

PASSWORD = "bench-password-1"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_phase(
    name: str, count: int, concurrency: int, request: Callable[[int], Awaitable[httpx.Response]], expect: int
) -> None:
    """Send `count` requests, `concurrency` at a time; print requests/s and latency percentiles."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            start = time.perf_counter()
            response = await request(index)
            latencies.append(time.perf_counter() - start)
            if response.status_code != expect:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    print(
        f"{name:<28} {count:>6} {concurrency:>4} {count / elapsed:>10.1f} "
        f"{statistics.median(latencies) * 1000:>9.1f} {percentile(latencies, 0.95) * 1000:>9.1f}",
        flush=True,
    )


async def bench(url: str, users: int, concurrency: int, samples: int) -> None:
    run = uuid.uuid4().hex[:8]
    emails = [f"bench-{run}-{i}@example.com" for i in range(users)]
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        print(f"server {url}, {os.cpu_count()} CPUs on this machine", flush=True)
        print(f"{'phase':<28} {'reqs':>6} {'conc':>4} {'req/s':>10} {'p50 ms':>9} {'p95 ms':>9}", flush=True)
        sessions: dict[int, str] = {}

        async def register(i: int) -> httpx.Response:
            body = {"email": emails[i], "password": PASSWORD, "display_name": f"Bench {i}"}
            response = await http.post("/api/v1/auth/register", json=body)
            if response.status_code == 201:
                sessions[i] = response.json()["access_token"]
            return response

        await run_phase("register", users, concurrency, register, 201)

        async def login(i: int) -> httpx.Response:
            return await http.post("/api/v1/auth/login", json={"email": emails[i % users], "password": PASSWORD})

        await run_phase("login, one at a time", samples, 1, login, 200)
        await run_phase("login, concurrent", users, concurrency, login, 200)

        async def me(i: int) -> httpx.Response:
            return await http.get("/api/v1/me", headers={"Authorization": f"Bearer {sessions[i % users]}"})

        await run_phase("GET /me (access token)", users * 5, concurrency, me, 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server; default: start one")
    parser.add_argument("--users", type=int, default=200, help="accounts to register and log in (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--samples", type=int, default=50, help="sequential logins for the latency row (default 50)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(bench(args.url, args.users, args.concurrency, args.samples))
        return
    from benchmarks.servers import RoomcastFleet

    fleet = RoomcastFleet(ask_per_minute=5, vote_per_minute=60, log_level="warning", extra_env={})
    try:
        fleet.start(1)
        asyncio.run(bench(fleet.servers[0].http, args.users, args.concurrency, args.samples))
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
