"""Start the servers under test and read what they cost: /proc, Redis INFO, pg_stat_database.

`RoomcastFleet` creates a fresh database, migrates it with `roomcast migrate`, then starts N
`roomcast serve --no-migrate` processes on free loopback ports, all sharing that database, the
local Redis and one unique `ROOMCAST_REDIS_PREFIX`. `BaselineFleet` starts N
`python -m benchmarks.baseline` processes. Both are stopped (and the database dropped, the
prefix's Redis keys deleted) by `stop()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import redis

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortRange:
    """Ports handed out in order from `base` (skipping any in use), for runs that must stay in a range."""

    def __init__(self, base: int, size: int = 100) -> None:
        self.base, self.end = base, base + size
        self.next = base

    def take(self) -> int:
        while self.next < self.end:
            port, self.next = self.next, self.next + 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise RuntimeError(f"no free port left in {self.base}-{self.end - 1}")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh loop in a thread (callers may be inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def machine_steal() -> float:
    """Seconds the hypervisor ran something else while this VM's CPUs wanted to run (/proc/stat `steal`)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return values[7] / CLK_TCK if len(values) > 7 else 0.0


def pids_named(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == name:
                    out.append(int(entry))
    return out


def start_private_redis(workdir: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server of our own on a free port, without persistence: (its process, its URL)."""
    port = free_port()
    directory = workdir or Path(tempfile.mkdtemp(prefix="roomcast-bench-redis-"))
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=str(directory),
        stdout=(directory / f"redis-{port}.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                return proc, url
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


@dataclass
class ServerProc:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    ws_path: str = "/ws"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)


@dataclass
class Fleet:
    kind: str
    servers: list[ServerProc] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="roomcast-bench-")))
    last_cpu: dict[int, float] = field(default_factory=dict)
    ports: PortRange | None = None
    """Where server ports come from; any free port when None."""
    wire: str | None = None
    """benchmarks.peers.wire's name for the protocol its servers speak; None: roomcast's."""

    def port(self) -> int:
        return self.ports.take() if self.ports is not None else free_port()

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers if s.alive()]

    def cpu(self) -> float:
        """CPU seconds of every server process so far (a killed one keeps its last reading)."""
        for server in self.servers:
            if server.alive():
                self.last_cpu[server.pid] = cpu_seconds(server.pid)
        return sum(self.last_cpu.values())

    def rss(self) -> int:
        return sum(rss_bytes(p) for p in self.pids)

    def metrics(self, server: ServerProc) -> dict[str, float]:
        """The server's /metrics as {name{labels}: value} (empty if it has none yet)."""
        try:
            text = httpx.get(server.http + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    def _spawn(self, name: str, port: int, argv: list[str], env: dict[str, str], ws_path: str = "/ws") -> ServerProc:
        log = self.workdir / f"{name}.log"
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=str(ROOT),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return ServerProc(name, port, proc, log, ws_path)

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for server in self.servers:
            while True:
                if not server.alive():
                    raise RuntimeError(f"{server.name} exited: {server.log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(server.http + path, timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} not ready after {timeout}s: {server.log.read_text()[-2000:]}")
                time.sleep(0.2)

    def start(self, count: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for server in self.servers:
            server.kill(signal.SIGTERM)
        deadline = time.monotonic() + 12
        for server in self.servers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(max(0.1, deadline - time.monotonic()))
            if server.alive():
                server.kill(signal.SIGKILL)
                server.proc.wait(5)


class BaselineFleet(Fleet):
    def __init__(self) -> None:
        super().__init__("baseline")

    def start(self, count: int) -> None:
        for i in range(count):
            port = self.port()
            argv = [sys.executable, "-m", "benchmarks.baseline", "--port", str(port)]
            self.servers.append(self._spawn(f"baseline{i}", port, argv, dict(os.environ)))
        self.wait_ready("/health/live")


class RoomcastFleet(Fleet):
    def __init__(
        self,
        *,
        ask_per_minute: int,
        vote_per_minute: int,
        log_level: str,
        extra_env: dict[str, str],
        own_redis: bool = False,
        uvicorn_ws: str | None = None,
    ) -> None:
        super().__init__("roomcast")
        self.uvicorn_ws = uvicorn_ws
        self.redis_proc: subprocess.Popen[bytes] | None = None
        redis_url = self._start_redis() if own_redis else REDIS_URL
        stamp = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)
        self.dbname = f"bench_{stamp}"
        self.prefix = f"bench-{stamp}"
        self.database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.dbname
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": redis_url,
                "ROOMCAST_REDIS_PREFIX": self.prefix,
                "ROOMCAST_SECRET_KEY": secrets.token_urlsafe(32),
                "ROOMCAST_DATA_DIR": str(self.workdir / "data"),
                "ROOMCAST_ASK_PER_MINUTE": str(ask_per_minute),
                "ROOMCAST_VOTE_PER_MINUTE": str(vote_per_minute),
                "ROOMCAST_JOIN_PER_MINUTE": "10000000",
                "ROOMCAST_REGISTER_PER_HOUR": "1000000",
                # every simulated client comes from 127.0.0.1: the per-address caps are for real
                # addresses (with them a storm's 5,000 reconnects met 429s beyond 1,000 at once)
                "ROOMCAST_MAX_SOCKETS_PER_ADDRESS": "1000000",
                "ROOMCAST_MAX_UNAUTHENTICATED_PER_ADDRESS": "1000000",
                "ROOMCAST_LOG_LEVEL": log_level,
            }
        )
        self.env.update(extra_env)
        self.redis = redis.Redis.from_url(redis_url)

    def _start_redis(self) -> str:
        """A private redis-server, so INFO commandstats and CPU count only this benchmark."""
        self.redis_proc, url = start_private_redis(self.workdir)
        return url

    def start(self, count: int) -> None:
        run_sync(self._create_db())
        migrate = subprocess.run(
            [str(VENV_BIN / "roomcast"), "migrate"], env=self.env, cwd=str(ROOT), capture_output=True, timeout=300
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"roomcast migrate failed: {migrate.stdout.decode()} {migrate.stderr.decode()}")
        for _ in range(count):
            self.add_server()
        self.wait_ready("/health/ready")

    def add_server(self) -> ServerProc:
        port = self.port()
        argv = [str(VENV_BIN / "roomcast"), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"]
        if self.uvicorn_ws:
            argv += ["--ws", self.uvicorn_ws]
        server = self._spawn(f"roomcast{len(self.servers)}", port, argv, self.env)
        self.servers.append(server)
        return server

    async def _create_db(self) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'CREATE DATABASE "{self.dbname}"')
        finally:
            await conn.close()

    def stop(self, keep_db: bool = False) -> None:
        super().stop()
        if not keep_db:
            with contextlib.suppress(Exception):
                run_sync(self._drop_db())
        with contextlib.suppress(redis.RedisError):
            keys = list(self.redis.scan_iter(match=f"{self.prefix}*", count=1000))
            for i in range(0, len(keys), 1000):
                self.redis.delete(*keys[i : i + 1000])
        if self.redis_proc is not None:
            self.redis_proc.terminate()
            self.redis_proc.wait(10)

    async def _drop_db(self) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        finally:
            await conn.close()

    async def pg_counters(self) -> dict[str, int]:
        """This database's transaction and tuple counters (PostgreSQL flushes them up to ~10 s late)."""
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            row = await conn.fetchrow(
                "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted"
                " FROM pg_stat_database WHERE datname = $1",
                self.dbname,
            )
        finally:
            await conn.close()
        return dict(row) if row else {}

    async def pg_settled_counters(self, timeout: float = 25.0) -> dict[str, int]:
        """Counters once they stop moving for 2 s in a row (backends flush idle stats lazily)."""
        deadline = time.monotonic() + timeout
        last = await self.pg_counters()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            now = await self.pg_counters()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 11.0:
                break
        return last

    def redis_stats(self) -> dict[str, Any]:
        """Redis CPU and per-command call counts (whole server: keep other users of it quiet)."""
        info: Any = self.redis.info("cpu")
        stats: dict[str, Any] = {"cpu": float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}
        commands: Any = self.redis.info("commandstats")
        stats["calls"] = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in commands.items()}
        return stats

    def redis_subscriptions(self) -> dict[str, Any]:
        r: Any = self.redis
        channels = [c.decode() for c in r.pubsub_channels(f"{self.prefix}*")]
        numsub = dict(r.pubsub_numsub(*channels)) if channels else {}
        counts = {k.decode().removeprefix(self.prefix + ":"): int(v) for k, v in numsub.items()}
        return {
            "channels": len(channels),
            "max_numsub": max(counts.values(), default=0),
            "meeting_channels": {k: v for k, v in counts.items() if "meeting:" in k},
            "numpat": int(r.pubsub_numpat()),
        }
