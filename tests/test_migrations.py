"""Migrations under the advisory lock: concurrent migrators apply each migration exactly once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support import ROOT, DatabaseFactory, ServiceUrls, server_environment


@pytest.fixture
async def empty_database(databases: DatabaseFactory) -> AsyncIterator[str]:
    url = await databases.create_empty(f"roomcast_e_{uuid.uuid4().hex[:12]}")
    yield url
    await databases.drop(url)


async def test_three_concurrent_migrators_apply_once(empty_database: str, services: ServiceUrls) -> None:
    env = server_environment(empty_database, services.redis_url, "unused")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "server.cli", "migrate"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    applied_counts = sorted(int(out.decode().split()[1]) for out, _ in outputs)
    connection = await asyncpg.connect(empty_database)
    try:
        rows = await connection.fetch("SELECT name, count(*) AS n FROM migration GROUP BY name")
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meetings'"
        )
    finally:
        await connection.close()
    assert rows and all(row["n"] == 1 for row in rows)
    assert applied_counts == [0, 0, len(rows)]
    assert tables == 1
