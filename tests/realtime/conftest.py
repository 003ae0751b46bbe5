"""Fixtures of the realtime suite: a pair of real servers shared by one module, and `world`.

Most realtime tests only need two `roomcast serve` processes on one database and Redis prefix
and make their own users and meetings, so one pair per module keeps the suite fast. Tests that
stop, kill or reconfigure a server use the per-test `start_servers` fixture instead.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from server.settings import Settings
from tests.support import DatabaseFactory, ServerProcess, ServiceUrls, delete_prefix, server_environment, test_secret
from tests.wsclient import World


@dataclass
class Pair:
    servers: list[ServerProcess]
    world: World
    settings: Settings
    prefix: str
    redis_url: str


@pytest.fixture(scope="module")
async def pair(databases: DatabaseFactory, services: ServiceUrls) -> AsyncIterator[Pair]:
    """Two server processes sharing one database and Redis prefix, for every test of a module."""
    database_url = await databases.create()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    env = server_environment(database_url, services.redis_url, prefix)
    servers = [ServerProcess(env=env).start() for _ in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        settings = Settings(
            database_url=database_url,
            redis_url=services.redis_url,
            redis_prefix=prefix,
            secret_key=test_secret(prefix),
        )
        yield Pair(servers, World(database_url, settings), settings, prefix, services.redis_url)
    finally:
        for server in servers:
            server.stop()
        await databases.drop(database_url)
        await delete_prefix(services.redis_url, prefix)


@pytest.fixture
def world(database_url: str, settings: Settings) -> World:
    """People and meetings in this test's own database (for tests with their own servers)."""
    return World(database_url, settings)


@pytest.fixture
async def redis(services: ServiceUrls) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(services.redis_url)
    yield client
    await client.aclose()
