"""The coordinator's machinery: client processes, the publisher, and measurement windows.

A `Harness` owns one fleet of servers under test and the client processes pointed at it. Client
processes report live counters through shared memory; `snapshot()` reads them together with the
CPU and RSS of every process involved, and `phase_row()` turns two snapshots into a table row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing as mp
import os
import shutil
import time
import uuid
from array import array
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks import profile, report
from benchmarks.peers.wire import wire_for
from benchmarks.servers import (
    BaselineFleet,
    Fleet,
    RoomcastFleet,
    cpu_seconds,
    machine_cpu,
    machine_steal,
    pids_named,
    rss_bytes,
)
from benchmarks.worker import Msg, Slot, decode_msg, encode, peer_handshake, raise_nofile, worker_main
from benchmarks.wsclient import Client, open_client

STALL_S = 10.0
"""A publisher that sees no delivery progress for this long gives up on the phase."""


class Harness:
    def __init__(self, fleet: Fleet, *, client: str, processes: int, progress: report.Progress) -> None:
        self.fleet = fleet
        self.client = client
        self.nproc = processes
        self.progress = progress
        self.room = f"meeting:{uuid.uuid4()}"
        self.join_code = ""
        self.owner_token = "baseline"
        self.procs: list[Any] = []
        self.pipes: list[Any] = []
        self.shm: Any = None
        self.publisher: Publisher | None = None
        self.phase = "setup"
        self.rss0: int | None = None
        self.pg_cpu_seen: dict[int, float] = {}
        self.meeting_id = ""
        raise_nofile()

    # --- roomcast setup over REST ---------------------------------------------------------------

    def create_meeting(self, *, title: str = "bench town hall") -> None:
        if not isinstance(self.fleet, RoomcastFleet):
            return
        base = self.fleet.servers[0].http
        email = f"owner-{uuid.uuid4().hex[:12]}@bench.example.com"
        with httpx.Client(base_url=base, timeout=30) as http:
            r = http.post(
                "/api/v1/auth/register", json={"email": email, "password": "bench-password-1", "display_name": "Bench"}
            )
            r.raise_for_status()
            self.owner_token = r.json()["access_token"]
            headers = {"Authorization": f"Bearer {self.owner_token}"}
            r = http.post("/api/v1/meetings", json={"title": title}, headers=headers)
            r.raise_for_status()
            meeting = r.json()
            if meeting.get("status") != "live":
                http.patch(f"/api/v1/meetings/{meeting['id']}", json={"status": "live"}, headers=headers)
        self.room = f"meeting:{meeting['id']}"
        self.join_code = meeting["join_code"]
        self.meeting_id = meeting["id"]

    # --- client processes ------------------------------------------------------------------------

    def start_workers(self, *, track: bool = False, reconnect: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self.shm = ctx.RawArray("q", self.nproc * Slot.WIDTH)
        cfg = {
            "client": self.client,
            "room": self.room,
            "urls": [s.ws for s in self.fleet.servers],
            "http": self.fleet.servers[0].http if self.fleet.servers else "",
            "join_code": self.join_code,
            "track": track,
            "reconnect": reconnect,
            "wire": self.fleet.wire,
        }
        for wid in range(self.nproc):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(wid, cfg, theirs, self.shm), daemon=True)
            proc.start()
            self.procs.append(proc)
            self.pipes.append(ours)

    async def call(self, name: str, params: list[Any] | Any = None, timeout: float = 600.0) -> list[Any]:
        """Send one command to every client process and wait for all answers, showing progress."""
        per = params if isinstance(params, list) else [params] * len(self.pipes)
        for pipe, p in zip(self.pipes, per, strict=True):
            pipe.send((name, p))
        results: list[Any] = [None] * len(self.pipes)
        pending = set(range(len(self.pipes)))
        deadline = time.monotonic() + timeout
        while pending:
            for i in list(pending):
                if self.pipes[i].poll():
                    results[i] = self.pipes[i].recv()[1]
                    pending.discard(i)
                    if isinstance(results[i], dict) and set(results[i]) == {"error"}:
                        raise RuntimeError(f"client process {i} failed {name!r}: {results[i]['error']}")
                elif not self.procs[i].is_alive():
                    raise RuntimeError(f"client process {i} died")
            if time.monotonic() > deadline:
                raise TimeoutError(f"client processes did not answer {name!r} within {timeout}s")
            self.show()
            await asyncio.sleep(0.02)
        return results

    async def connect_clients(self, count: int, *, offset: int = 0) -> dict[str, Any]:
        """Open `count` clients (authenticated, joined to the room), spread over processes and servers."""
        indexes = [list(range(offset + w, offset + count, self.nproc)) for w in range(self.nproc)]
        started = time.monotonic()
        results = await self.call("setup", [{"indexes": ix} for ix in indexes])
        await self.call("members")
        ok = sum(r["ok"] for r in results)
        failures = [f for r in results for f in r["failures"]]
        if failures:
            self.progress.note(f"connect failures ({count - ok}): {failures[:3]}")
        return {
            "requested": count,
            "ok": ok,
            "seconds": time.monotonic() - started,
            "guest_join_seconds": max(r["rest_seconds"] for r in results),
            "failures": failures[:5],
        }

    async def stop_workers(self) -> None:
        if self.pipes:
            with contextlib.suppress(Exception):
                await self.call("quit", timeout=20)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        self.procs, self.pipes = [], []

    def counters(self) -> dict[str, int]:
        if self.shm is None:
            return {}
        names = [n for n in vars(Slot) if n.isupper() and n != "WIDTH"]
        out = {}
        for name in names:
            i = getattr(Slot, name)
            out[name.lower()] = sum(self.shm[w * Slot.WIDTH + i] for w in range(self.nproc))
        return out

    def completed(self) -> int:
        """Events every subscriber has (each client process counts its own; the slowest counts)."""
        return int(min(self.shm[w * Slot.WIDTH + Slot.COMPLETED] for w in range(self.nproc)))

    def client_cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs if p.pid) + cpu_seconds(os.getpid())

    def show(self) -> None:
        c = self.counters()
        sent = self.publisher.sent if self.publisher else 0
        self.progress.show(
            f"[{self.fleet.kind} {self.phase}] conns={c.get('connected', 0)} joined={c.get('joined', 0)} "
            f"frames={c.get('frames', 0)} published={sent} errors={c.get('errors', 0) + c.get('error_frames', 0)} "
            f"disconnects={c.get('disconnects', 0)} reconnected={c.get('reconnected', 0)}"
        )

    # --- measurement ------------------------------------------------------------------------------

    def postgres_cpu(self) -> float:
        """CPU seconds of every PostgreSQL process seen so far (backends come and go; all users of it)."""
        for pid in pids_named("postgres"):
            self.pg_cpu_seen[pid] = max(self.pg_cpu_seen.get(pid, 0.0), cpu_seconds(pid))
        return sum(self.pg_cpu_seen.values())

    def snapshot(self) -> dict[str, Any]:
        busy, total = machine_cpu()
        snap: dict[str, Any] = {
            "t": time.monotonic(),
            "counters": self.counters(),
            "server_cpu": self.fleet.cpu(),
            "server_rss": self.fleet.rss(),
            "client_cpu": self.client_cpu(),
            "client_rss": sum(rss_bytes(p.pid) for p in self.procs if p.pid),
            "postgres_cpu": self.postgres_cpu(),
            "machine_busy": busy,
            "machine_total": total,
            "machine_steal": machine_steal(),
            "published": self.publisher.sent if self.publisher else 0,
            "publisher_errors": sum(self.publisher.errors.values()) if self.publisher else 0,
        }
        if isinstance(self.fleet, RoomcastFleet):
            snap["redis"] = self.fleet.redis_stats()
            snap["fanout_buckets"] = self.fanout_buckets()
        return snap

    def roomcast_writes(self) -> dict[str, int]:
        """roomcast's `ws.authenticated` log lines by `direct=`: sessions whose fan-out skips ASGI (channels/wire.py).

        Direct writes need uvicorn's `websockets-sansio` connection to look as channels/wire.py
        expects; on another uvicorn they silently fall back to ASGI `send`, at about twice the
        server CPU per frame (docs/benchmarks.md), so every roomcast result records which it was.
        """
        counts = {"direct": 0, "asgi": 0}
        for server in self.fleet.servers:
            with contextlib.suppress(OSError):
                for line in server.log.read_text(errors="replace").splitlines():
                    if "ws.authenticated" in line:
                        counts["direct" if "direct=True" in line else "asgi"] += 1
        return counts

    def fanout_buckets(self) -> dict[float, float]:
        """roomcast's own publish -> written-to-socket histogram, summed over live servers."""
        buckets: dict[float, float] = {}
        for server in self.fleet.servers:
            if not server.alive():
                continue
            for name, value in self.fleet.metrics(server).items():
                if name.startswith('roomcast_fanout_latency_seconds_bucket{le="'):
                    le = name.split('"')[1]
                    bound = float("inf") if le == "+Inf" else float(le)
                    buckets[bound] = buckets.get(bound, 0.0) + value
        return buckets

    async def latencies(self, reset: bool = True) -> dict[str, float]:
        answers = await self.call("lat")
        samples: array[int] = array("I")
        for a in answers:
            chunk = array("I")
            chunk.frombytes(a["lat"])
            samples.extend(chunk)
        if reset:
            await self.call("lat_reset")
        return report.percentiles(samples)

    def phase_row(self, name: str, a: dict[str, Any], b: dict[str, Any], lat: dict[str, float]) -> dict[str, Any]:
        dt = max(b["t"] - a["t"], 1e-9)
        ca, cb = a["counters"], b["counters"]
        frames = cb["frames"] - ca["frames"]
        server_cpu = b["server_cpu"] - a["server_cpu"]
        row: dict[str, Any] = {
            "phase": f"{self.fleet.kind} {name}",
            "seconds": dt,
            "connections": cb["connected"],
            "events_per_s": (b["published"] - a["published"]) / dt,
            "frames_per_s": frames / dt,
            "bytes_per_frame": (cb["bytes"] - ca["bytes"]) / frames if frames else None,
            "cpu_us_per_frame": server_cpu / frames * 1e6 if frames else None,
            "server_cpu_pct": server_cpu / dt * 100,
            "client_cpu_pct": (b["client_cpu"] - a["client_cpu"]) / dt * 100,
            "machine_cpu_pct": (b["machine_busy"] - a["machine_busy"]) / dt * 100,
            "postgres_cpu_pct": (b["postgres_cpu"] - a["postgres_cpu"]) / dt * 100,
            "steal_pct": (b["machine_steal"] - a["machine_steal"]) / dt * 100,
            "frames_per_server_core_s": frames / server_cpu if server_cpu else None,
            "errors": (cb["errors"] - ca["errors"])
            + (cb["error_frames"] - ca["error_frames"])
            + (b["publisher_errors"] - a["publisher_errors"]),
            "disconnects": cb["disconnects"] - ca["disconnects"],
            "gaps": cb["gaps"] - ca["gaps"],
            "dups": cb["dups"] - ca["dups"],
            "server_rss": b["server_rss"],
            "server_rss_mib": b["server_rss"] / 2**20,
            "client_rss_mib": b["client_rss"] / 2**20,
            "rss_per_conn_kib": (b["server_rss"] - self.rss0) / cb["connected"] / 1024
            if self.rss0 is not None and cb["connected"]
            else None,
            **lat,
        }
        if a.get("fanout_buckets") and b.get("fanout_buckets"):
            delta = {k: v - a["fanout_buckets"].get(k, 0.0) for k, v in b["fanout_buckets"].items()}
            for q in (0.5, 0.99):
                row[f"server_fanout_p{int(q * 100)}_ms"] = report.bucket_quantile(delta, q)
        if "redis" in a and "redis" in b:
            calls_a, calls_b = a["redis"]["calls"], b["redis"]["calls"]
            row["redis_cpu_pct"] = (b["redis"]["cpu"] - a["redis"]["cpu"]) / dt * 100
            row["redis_calls"] = {k: v - calls_a.get(k, 0) for k, v in calls_b.items() if v != calls_a.get(k, 0)}
        return row

    def profile_start(self, tag: str, seconds: float) -> list[tuple[str, Any, Path]]:
        """py-spy on every live server process for `seconds` (see benchmarks/profile.py)."""
        handles = []
        report.RESULTS.mkdir(parents=True, exist_ok=True)
        for server in self.fleet.servers:
            if server.alive():
                path = report.RESULTS / f"profile-{tag}-{server.name}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
                proc = profile.start(server.pid, seconds, path)
                if proc is not None:
                    handles.append((server.name, proc, path))
        return handles

    async def profile_finish(self, handles: list[tuple[str, Any, Path]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, proc, path in handles:
            for _ in range(600):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            if path.exists():
                summary = profile.summarize(path)
                out[name] = {"file": str(path), **summary}
                self.progress.note(f"profile of {name} ({path}):\n{profile.render(summary)}")
        return out

    async def open_publisher(self, connections: int = 2, join: bool = True) -> Publisher:
        self.publisher = Publisher(self, connections, join)
        await self.publisher.start()
        return self.publisher


class Publisher:
    """Sends bench-stamped `ask` frames from the coordinator, paced by delivery or by a rate.

    Against roomcast one `ask` publishes one event through Redis to every process, so each event
    goes to one connection (round-robin over all servers); so do the peers' (benchmarks/peers/).
    Baseline processes know nothing of each other, so each event is sent once to every baseline
    process (the role Redis plays for roomcast). With `join=False` the publishers ask without
    being members of the room (roomcast checks the meeting role, not the room), so every frame
    the servers deliver is one the client processes count.
    """

    def __init__(self, harness: Harness, per_server: int, join: bool = True) -> None:
        self.h = harness
        self.per_server = per_server
        self.join = join
        self.wire = wire_for(harness.fleet.wire, harness.room)
        self.groups: list[list[Client]] = []
        self.sent = 0
        self.replies = 0
        self.errors: dict[str, int] = {}
        self.waiters: dict[str, asyncio.Future[Any]] = {}

    def _on_message(self, client: Client, payload: bytes) -> None:
        if self.wire is not None:
            peer = self.wire.decode(client, payload)
            if peer is None:
                return
            m: Msg = peer
        else:
            m = decode_msg(payload)
        if m.type == "reply":
            self.replies += 1
        elif m.type == "error":
            key = f"{m.code}: {m.message}"
            self.errors[key] = self.errors.get(key, 0) + 1
        if m.type in ("welcome", "joined") or (m.type == "error" and m.ref in self.waiters):
            fut = self.waiters.pop(m.type if m.type == "welcome" else str(m.ref), None)
            if fut is not None and not fut.done():
                fut.set_result(m)

    def _on_close(self, client: Client, code: int) -> None:
        self.errors[f"publisher closed {code}"] = self.errors.get(f"publisher closed {code}", 0) + 1

    async def open_one(self, url: str, n: int) -> Client:
        client = await open_client(self.h.client, url, self._on_message, self._on_close)
        if self.wire is not None:
            await peer_handshake(self.wire, client, self.waiters, self.h.room if self.join else None)
            return client
        loop = asyncio.get_running_loop()
        self.waiters["welcome"] = loop.create_future()
        client.send(encode({"type": "auth", "token": self.h.owner_token}))
        await asyncio.wait_for(self.waiters["welcome"], 30)
        if not self.join:
            return client
        ref = f"pub{n}"
        self.waiters[ref] = loop.create_future()
        client.send(encode({"type": "join", "room": self.h.room, "ref": ref}))
        joined = await asyncio.wait_for(self.waiters[ref], 30)
        if joined.type != "joined":
            raise RuntimeError(f"publisher join: {joined.code} {joined.message}")
        return client

    async def start(self) -> None:
        n = itertools.count()
        servers = self.h.fleet.servers
        if self.h.fleet.kind == "baseline":
            self.groups = [[await self.open_one(s.ws, next(n)) for s in servers] for _ in range(self.per_server)]
        else:
            self.groups = [[await self.open_one(s.ws, next(n))] for _ in range(self.per_server) for s in servers]

    def close(self) -> None:
        for group in self.groups:
            for client in group:
                client.close()

    def send(self) -> None:
        idx = self.sent
        group = self.groups[idx % len(self.groups)]
        text = f"bench {idx} {time.time_ns()} publisher"
        if self.wire is not None:
            payload = self.wire.ask_frame(self.h.room, text)
        else:
            payload = encode({"type": "ask", "room": self.h.room, "text": text, "ref": f"q{idx}"})
        for client in group:
            client.send(payload)
        self.sent += 1

    async def windowed(self, window: int, seconds: float) -> bool:
        """Keep `window` events in flight until every subscriber has them; False if delivery stalled."""
        h = self.h
        end = time.monotonic() + seconds
        last_progress, last_completed = time.monotonic(), h.completed()
        while (now := time.monotonic()) < end:
            completed = h.completed()
            if completed != last_completed:
                last_progress, last_completed = now, completed
            elif now - last_progress > STALL_S:
                return False
            while self.sent - completed < window:
                self.send()
            h.show()
            await asyncio.sleep(0.001)
        return True

    async def paced(self, rate: float, seconds: float, max_in_flight: int) -> int:
        """Open loop at `rate` events/s; returns how many sends were skipped at the in-flight cap."""
        h = self.h
        start = time.monotonic()
        base = self.sent
        skipped = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(rate * elapsed) - (self.sent - base) - skipped
            for _ in range(max(due, 0)):
                if self.sent - h.completed() >= max_in_flight:
                    skipped += 1
                else:
                    self.send()
            h.show()
            await asyncio.sleep(0.002)
        return skipped

    async def drain(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.h.completed() >= self.sent:
                return True
            self.h.show()
            await asyncio.sleep(0.01)
        return False


def make_fleet(kind: str, args: argparse.Namespace, *, env: dict[str, str] | None = None, **limits: int) -> Fleet:
    """Start `args.servers` processes of `kind`: roomcast, baseline or a peer (benchmarks/peers/).

    `env`: settings for roomcast's processes beyond the benchmark's own (servers.py).
    """
    from benchmarks.peers.fleets import PEERS, PeerFleet

    fleet: Fleet
    if kind == "baseline":
        fleet = BaselineFleet()
    elif kind in PEERS:
        fleet = PeerFleet(kind)
    else:
        fleet = RoomcastFleet(
            ask_per_minute=limits.get("ask_per_minute", 1_000_000),
            vote_per_minute=limits.get("vote_per_minute", 1_000_000),
            log_level=args.log_level,
            extra_env=env or {},
            own_redis=args.redis == "own",
            uvicorn_ws=args.uvicorn_ws,
        )
    fleet.ports = getattr(args, "ports", None)
    try:
        fleet.start(args.servers)
    except BaseException:
        fleet.stop()
        raise
    return fleet


@contextlib.asynccontextmanager
async def running(
    kind: str,
    args: argparse.Namespace,
    progress: report.Progress,
    *,
    env: dict[str, str] | None = None,
    **limits: int,
) -> AsyncIterator[Harness]:
    """A fleet of `kind` plus its harness, torn down whatever happens."""
    progress.note(f"starting {args.servers} {kind} server process(es)")
    fleet = make_fleet(kind, args, env=env, **limits)
    harness = Harness(fleet, client=args.client, processes=args.processes, progress=progress)
    try:
        harness.create_meeting()
        yield harness
    finally:
        if harness.publisher:
            harness.publisher.close()
        await harness.stop_workers()
        if isinstance(fleet, RoomcastFleet):
            fleet.stop(keep_db=args.keep_db)
        else:
            fleet.stop()
        if args.keep_logs:
            progress.note(f"server logs kept in {fleet.workdir}")
        else:
            shutil.rmtree(fleet.workdir, ignore_errors=True)
        progress.done()
