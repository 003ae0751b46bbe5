"""Scenario `shards` (issue 20): many rooms on one Redis shard against two, at one fixed total event rate.

    python -m benchmarks.load shards                                   # 200 rooms x 50 members, 1 then 2 shards
    python -m benchmarks.load shards --rooms 10 --members 5 --rate 20 --duration 5   # a quick look

For each shard count the scenario starts private `redis-server`s (one for `REDIS_URL`, one per
shard: `ROOMCAST_ROOM_REDIS_URLS`), `--servers` roomcast processes on a fresh database, one
meeting per room and `--members` guests in each (spread over client processes and servers),
and one more guest per room who asks (`ask` publishes three events: the meeting room, its
moderation room and the asker's own room). It asks at `--rate` per second in total, round-robin
over the rooms, for `--warmup` and then `--duration` seconds, and reads:

- Redis CPU of each shard and of `REDIS_URL` (INFO `used_cpu_*`, so only this benchmark's);
- server CPU per frame delivered to the members (/proc), and publish-to-receive latency
  (each question's text carries the send time; every process is on one machine);
- gaps in any member's seq (there must be none).

The claim to check: with two shards each shard's Redis CPU is about half of the one shard's,
and server CPU per frame and p99 latency do not get worse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import subprocess
import threading
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

import httpx
import msgspec
import redis

from benchmarks import report
from benchmarks.servers import RoomcastFleet, start_private_redis
from benchmarks.worker import decode_msg, encode, raise_nofile
from benchmarks.wsclient import Client, open_client

PASSWORD = "bench-password-1"


class Member:
    __slots__ = ("room", "seq")

    def __init__(self, room: str) -> None:
        self.room = room
        self.seq: int | None = None


async def guest_token(http: httpx.AsyncClient, join_code: str, name: str) -> str:
    problem = ""
    for attempt in range(5):
        try:
            r = await http.post("/api/v1/meetings/join", json={"join_code": join_code, "display_name": name})
        except httpx.HTTPError as err:
            problem = f"{type(err).__name__}: {err}"
        else:
            if r.status_code == 200:
                return str(r.json()["guest_token"])
            problem = f"{r.status_code} {r.text[:200]}"
        await asyncio.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"join: {problem}")


async def member_socket(kind: str, url: str, token: str, room: str | None, on_message: Any, on_close: Any) -> Client:
    """A WebSocket authenticated with `token` and joined to `room` (if given); waits for each answer."""
    answers: asyncio.Queue[Any] = asyncio.Queue()

    def first(client: Client, payload: bytes) -> None:
        answers.put_nowait(decode_msg(payload))

    client = await open_client(kind, url, first, on_close)
    client.send(encode({"type": "auth", "token": token}))
    welcome = await asyncio.wait_for(answers.get(), 30)
    if welcome.type != "welcome":
        raise RuntimeError(f"auth answered {welcome.type} {welcome.code}")
    if room is not None:
        client.send(encode({"type": "join", "room": room, "ref": "j"}))
        while True:
            joined = await asyncio.wait_for(answers.get(), 30)
            if joined.ref == "j":
                break
        if joined.type != "joined":
            raise RuntimeError(f"join answered {joined.type} {joined.code}: {joined.message}")
    client.on_message = on_message
    return client


class ClientProcess:
    """One client process: members of several rooms on one event loop, answering the coordinator's commands."""

    def __init__(self, cfg: dict[str, Any], pipe: Connection) -> None:
        self.cfg = cfg
        self.pipe = pipe
        self.clients: list[Client] = []
        self.frames = 0
        self.gaps = 0
        self.closed = 0
        self.lat = array("I")

    def on_message(self, client: Client, payload: bytes) -> None:
        self.frames += 1
        try:
            m = decode_msg(payload)
        except msgspec.DecodeError:
            return
        member: Member = client.user
        if m.seq is not None and m.room == member.room and m.type != "joined":
            if member.seq is not None and m.seq > member.seq + 1:
                self.gaps += m.seq - member.seq - 1
            member.seq = m.seq
        elif m.type == "joined" and m.room == member.room:
            member.seq = m.seq
        if m.type == "question.created" and m.question is not None and m.question.text.startswith("bench "):
            sent = int(m.question.text.split(" ", 3)[2])
            self.lat.append(min(max(time.time_ns() - sent, 0) // 1000, 0xFFFFFFFF))

    def on_close(self, client: Client, code: int) -> None:
        self.closed += 1

    async def setup(self, members: list[tuple[str, str, str]]) -> dict[str, Any]:
        """`members`: (room, join code, server ws URL) each; returns how many joined."""
        failures: list[str] = []
        limit = asyncio.Semaphore(64)
        async with httpx.AsyncClient(base_url=self.cfg["http"], timeout=60) as http:

            async def one(n: int, room: str, code: str, url: str) -> None:
                async with limit:
                    try:
                        token = await guest_token(http, code, f"member {n}")
                        kind = self.cfg["client"]
                        client = await member_socket(kind, url, token, room, self.on_message, self.on_close)
                    except Exception as err:
                        if len(failures) < 5:
                            failures.append(f"{type(err).__name__}: {err}")
                        return
                    client.user = Member(room)
                    self.clients.append(client)

            await asyncio.gather(*(one(n, *member) for n, member in enumerate(members)))
        return {"ok": len(self.clients), "failures": failures}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[Any] = asyncio.Queue()

        def read() -> None:
            while True:
                try:
                    command = self.pipe.recv()
                except (EOFError, OSError):
                    command = ("quit", None)
                loop.call_soon_threadsafe(commands.put_nowait, command)
                if command[0] == "quit":
                    return

        threading.Thread(target=read, daemon=True).start()
        while True:
            name, params = await commands.get()
            result: Any = None
            try:
                if name == "setup":
                    result = await self.setup(params)
                elif name == "reset":
                    self.frames, self.gaps, self.lat = 0, 0, array("I")
                elif name == "report":
                    lat = self.lat.tobytes()
                    result = {"frames": self.frames, "gaps": self.gaps, "closed": self.closed, "lat": lat}
                elif name == "quit":
                    for client in self.clients:
                        client.close()
                    await asyncio.sleep(0.2)
            except Exception as err:
                result = {"error": f"{type(err).__name__}: {err}"}
            self.pipe.send((name, result))
            if name == "quit":
                return


def client_main(cfg: dict[str, Any], pipe: Connection) -> None:
    import uvloop

    raise_nofile()
    uvloop.run(ClientProcess(cfg, pipe).run())


class Clients:
    """The coordinator's side of the client processes."""

    def __init__(self, count: int, cfg: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(count):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(cfg, theirs), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

    async def call(self, name: str, params: list[Any] | None = None, timeout: float = 900.0) -> list[Any]:
        for n, pipe in enumerate(self.pipes):
            pipe.send((name, params[n] if params is not None else None))
        results: list[Any] = []
        deadline = time.monotonic() + timeout
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            while not pipe.poll():
                if not proc.is_alive():
                    raise RuntimeError("a client process died")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"client processes did not answer {name!r}")
                await asyncio.sleep(0.02)
            answer = pipe.recv()[1]
            if isinstance(answer, dict) and set(answer) == {"error"}:
                raise RuntimeError(f"client process failed {name!r}: {answer['error']}")
            results.append(answer)
        return results

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("quit", timeout=20)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


class Askers:
    """One guest per room who asks, from the coordinator: `rate` asks per second in total, round-robin."""

    def __init__(self) -> None:
        self.sockets: list[tuple[str, Client]] = []
        self.sent = 0
        self.errors: dict[str, int] = {}

    def on_message(self, client: Client, payload: bytes) -> None:
        m = decode_msg(payload)
        if m.type == "error":
            key = f"{m.code}: {m.message}"
            self.errors[key] = self.errors.get(key, 0) + 1

    async def open(self, kind: str, http: str, rooms: list[tuple[str, str]], urls: list[str]) -> None:
        async with httpx.AsyncClient(base_url=http, timeout=60) as client:
            for n, (room, code) in enumerate(rooms):
                token = await guest_token(client, code, f"asker {n}")
                url = urls[n % len(urls)]
                socket = await member_socket(kind, url, token, None, self.on_message, lambda c, code: None)
                self.sockets.append((room, socket))

    async def ask(self, rate: float, seconds: float) -> None:
        start = time.monotonic()
        base = self.sent
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(rate * elapsed) - (self.sent - base)
            for _ in range(max(due, 0)):
                room, socket = self.sockets[self.sent % len(self.sockets)]
                text = f"bench {self.sent} {time.time_ns()} shards"
                socket.send(encode({"type": "ask", "room": room, "text": text, "ref": f"a{self.sent}"}))
                self.sent += 1
            await asyncio.sleep(0.002)

    def close(self) -> None:
        for _, socket in self.sockets:
            socket.close()


def redis_cpu(url: str) -> float:
    client = redis.Redis.from_url(url)
    try:
        info: Any = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


async def one_setup(args: argparse.Namespace, shards: int, progress: report.Progress) -> dict[str, Any]:
    """Run the load against `shards` room shards; returns one table row."""
    redis_procs: list[subprocess.Popen[bytes]] = []
    fleet: RoomcastFleet | None = None
    clients: Clients | None = None
    askers = Askers()
    try:
        shard_urls = []
        for _ in range(shards):
            proc, url = start_private_redis()
            redis_procs.append(proc)
            shard_urls.append(url)
        fleet = RoomcastFleet(
            ask_per_minute=1_000_000,
            vote_per_minute=1_000_000,
            log_level=args.log_level,
            extra_env={"ROOMCAST_ROOM_REDIS_URLS": ",".join(shard_urls)},
            own_redis=True,
        )
        progress.note(f"{shards} shard(s): starting {args.servers} server(s)")
        fleet.start(args.servers)
        http = fleet.servers[0].http
        urls = [s.ws for s in fleet.servers]
        rooms = await create_meetings(http, args.rooms)
        members = [
            (room, code, urls[(r * args.members + m) % len(urls)])
            for r, (room, code) in enumerate(rooms)
            for m in range(args.members)
        ]
        clients = Clients(args.processes, {"client": args.client, "http": http})
        progress.note(f"{shards} shard(s): connecting {len(members)} members in {args.rooms} rooms")
        joined = await clients.call("setup", [members[n :: args.processes] for n in range(args.processes)])
        ok = sum(j["ok"] for j in joined)
        failures = [f for j in joined for f in j["failures"]]
        if failures:
            progress.note(f"connect failures ({len(members) - ok}): {failures[:3]}")
        await askers.open(args.client, http, rooms, urls)
        progress.note(f"{shards} shard(s): warm-up {args.warmup:g} s at {args.rate:g} asks/s")
        await askers.ask(args.rate, args.warmup)
        await asyncio.sleep(1.0)
        await clients.call("reset")
        cpu0, sent0 = fleet.cpu(), askers.sent
        redis0 = [redis_cpu(u) for u in shard_urls]
        default0 = redis_cpu(fleet.env["REDIS_URL"])
        t0 = time.monotonic()
        progress.note(f"{shards} shard(s): measuring {args.duration:g} s")
        await askers.ask(args.rate, args.duration)
        dt = time.monotonic() - t0
        cpu1, asks = fleet.cpu(), askers.sent - sent0
        redis1 = [redis_cpu(u) for u in shard_urls]
        default1 = redis_cpu(fleet.env["REDIS_URL"])
        await asyncio.sleep(1.0)  # the last events arrive
        reports = await clients.call("report")
        frames = sum(r["frames"] for r in reports)
        samples: array[int] = array("I")
        for r in reports:
            chunk = array("I")
            chunk.frombytes(r["lat"])
            samples.extend(chunk)
        shard_pct = [(b - a) / dt * 100 for a, b in zip(redis0, redis1, strict=True)]
        return {
            "phase": f"{shards} shard(s)",
            "shards": shards,
            "connections": ok,
            "seconds": dt,
            "events_per_s": asks * 3 / dt,
            "asks_per_s": asks / dt,
            "frames_per_s": frames / dt,
            "cpu_us_per_frame": (cpu1 - cpu0) / frames * 1e6 if frames else None,
            "server_cpu_pct": (cpu1 - cpu0) / dt * 100,
            "redis_shard_cpu_pct": shard_pct,
            "redis_shard_cpu_pct_max": max(shard_pct),
            "redis_default_cpu_pct": (default1 - default0) / dt * 100,
            "gaps": sum(r["gaps"] for r in reports),
            "disconnects": sum(r["closed"] for r in reports),
            "errors": sum(askers.errors.values()),
            "asker_errors": dict(askers.errors),
            **report.percentiles(samples),
        }
    finally:
        askers.close()
        if clients is not None:
            await clients.stop()
        if fleet is not None:
            fleet.stop(keep_db=args.keep_db)
        for proc in redis_procs:
            proc.terminate()
            proc.wait(10)


async def create_meetings(http: str, count: int) -> list[tuple[str, str]]:
    """An owner and `count` live meetings; returns (room, join code) of each."""
    import uuid

    email = f"owner-{uuid.uuid4().hex[:12]}@bench.example.com"
    out = []
    async with httpx.AsyncClient(base_url=http, timeout=60) as client:
        r = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "Bench"}
        )
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for n in range(count):
            r = await client.post("/api/v1/meetings", json={"title": f"room {n}"}, headers=headers)
            r.raise_for_status()
            meeting = r.json()
            if meeting.get("status") != "live":
                await client.patch(f"/api/v1/meetings/{meeting['id']}", json={"status": "live"}, headers=headers)
            out.append((f"meeting:{meeting['id']}", meeting["join_code"]))
    return out


COLUMNS: list[tuple[str, str, str]] = [
    ("phase", "setup", "{}"),
    ("connections", "conns", "{:.0f}"),
    ("events_per_s", "events/s", "{:.0f}"),
    ("frames_per_s", "frames/s", "{:.0f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("cpu_us_per_frame", "srv µs/frame", "{:.2f}"),
    ("server_cpu_pct", "srv CPU %", "{:.0f}"),
    ("redis_shard_cpu_pct_max", "busiest shard CPU %", "{:.1f}"),
    ("redis_default_cpu_pct", "REDIS_URL CPU %", "{:.1f}"),
    ("gaps", "gaps", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
]


async def scenario_shards(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    rows = [await one_setup(args, n, progress) for n in args.shard_counts]
    summary: dict[str, Any] = {
        row["phase"]: {"redis_shard_cpu_pct": [round(p, 2) for p in row["redis_shard_cpu_pct"]]} for row in rows
    }
    checks = [("no member saw a gap", all(r["gaps"] == 0 for r in rows), f"{[r['gaps'] for r in rows]}")]
    if len(rows) >= 2 and rows[0]["redis_shard_cpu_pct_max"]:
        one, more = rows[0], rows[-1]
        ratio = more["redis_shard_cpu_pct_max"] / one["redis_shard_cpu_pct_max"]
        summary["busiest_shard_cpu_ratio"] = ratio
        checks.append(
            (
                f"busiest shard's Redis CPU with {more['shards']} shards <= 0.65x one shard's",
                ratio <= 0.65,
                f"{ratio:.2f}x",
            )
        )
        if one["cpu_us_per_frame"] and more["cpu_us_per_frame"]:
            cpu = more["cpu_us_per_frame"] / one["cpu_us_per_frame"]
            summary["server_cpu_per_frame_ratio"] = cpu
            checks.append(("server CPU per frame no worse (<= 1.1x)", cpu <= 1.1, f"{cpu:.2f}x"))
        if one.get("p99_ms") and more.get("p99_ms"):
            p99 = more["p99_ms"] / one["p99_ms"]
            summary["p99_ratio"] = p99
            checks.append(("p99 latency no worse (<= 1.2x)", p99 <= 1.2, f"{p99:.2f}x"))
    return {"rows": rows, "summary": summary, "checks": checks, "extra": report.table(rows, COLUMNS)}


def add_parser(sub: Any, add_common: Any) -> None:
    p = sub.add_parser(
        "shards",
        help="issue 20: rooms on one Redis shard against two, at a fixed total event rate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rooms", type=int, default=200)
    p.add_argument("--members", type=int, default=50, help="members per room")
    p.add_argument("--rate", type=float, default=200.0, help="asks per second, all rooms together (3 events each)")
    p.add_argument(
        "--shard-counts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2], help="setups to compare"
    )
    add_common(p, run=scenario_shards, duration=30.0, warmup=5.0, processes=2)
