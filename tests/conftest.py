"""Fixtures every test leans on: real services, a database and a Redis prefix per test, apps and servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.settings import Settings
from tests.support import (
    DatabaseFactory,
    RedisServer,
    ServerProcess,
    ServiceUrls,
    delete_prefix,
    discover_services,
    server_environment,
    test_secret,
)


@pytest.fixture(scope="session")
def services() -> Iterator[ServiceUrls]:
    urls = discover_services()
    yield urls
    urls.stop()


@pytest.fixture(scope="session")
async def databases(services: ServiceUrls) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(services.database_url)
    await factory.create_template()
    yield factory
    await factory.drop_template()


@pytest.fixture
async def database_url(databases: DatabaseFactory) -> AsyncIterator[str]:
    url = await databases.create()
    yield url
    await databases.drop(url)


@pytest.fixture
async def redis_prefix(services: ServiceUrls) -> AsyncIterator[str]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    await delete_prefix(services.redis_url, prefix)


@pytest.fixture
def settings(
    database_url: str, redis_prefix: str, services: ServiceUrls, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=services.redis_url,
        redis_prefix=redis_prefix,
        data_dir=tmp_path_factory.mktemp("data"),
        secret_key=test_secret(redis_prefix),
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The real app, in this process, against this test's database and Redis prefix."""
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def server_env(database_url: str, redis_prefix: str, services: ServiceUrls) -> dict[str, str]:
    return server_environment(database_url, services.redis_url, redis_prefix)


@pytest.fixture
def start_servers(server_env: dict[str, str]) -> Iterator[Callable[..., list[ServerProcess]]]:
    """`start_servers(2)` starts real `roomcast serve` processes on this test's database; stopped after."""
    started: list[ServerProcess] = []

    def start(count: int = 1, *, args: tuple[str, ...] = (), **extra_env: str) -> list[ServerProcess]:
        env = {**server_env, **extra_env}
        servers = [ServerProcess(env=env, args=("--no-migrate", *args)).start() for _ in range(count)]
        started.extend(servers)
        for server in servers:
            server.wait_ready()
        return servers

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], list[RedisServer]]]:
    """`private_redis(2)` starts that many extra `redis-server`s on free ports (no persistence); stopped after."""
    started: list[RedisServer] = []

    def start(count: int = 1) -> list[RedisServer]:
        servers = [RedisServer(tmp_path_factory.mktemp("redis")).start() for _ in range(count)]
        started.extend(servers)
        return servers

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    return asyncio.DefaultEventLoopPolicy()
