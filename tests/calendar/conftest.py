"""Calendar tests: fake Google and Microsoft, a real `roomcast serve` and a real SAQ worker pointed at them.

`google` and `microsoft` are fresh fakes per test (tests/fakes). `calendar_app` starts one server
(its `ROOMCAST_PUBLIC_URL` is its own address, so the fakes' webhooks reach it) and one worker
with the fakes' URLs in their settings, the test CA trusted through `REQUESTS_CA_BUNDLE` /
`SSL_CERT_FILE`, and `OAUTHLIB_INSECURE_TRANSPORT=1` (the Google fake is plain http). In-process
tests get the same through `calendar_settings` and `test_environment`.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.embedded import free_port
from server.settings import Settings
from tests.fakes import google as fake_google
from tests.fakes import microsoft as fake_microsoft
from tests.fakes import provider_environment
from tests.fakes.google import FakeGoogle
from tests.fakes.microsoft import FakeMicrosoft
from tests.fakes.tls import TestCA, make_ca
from tests.helpers import API, auth_header
from tests.support import ServerProcess, eventually, running_workers
from tests.web.conftest import browser  # noqa: F401  (the browser suite's Chromium, for test_browser)
from tests.wsclient import Person, World


@pytest.fixture(scope="session")
def ca() -> TestCA:
    return make_ca(Path(tempfile.mkdtemp(prefix="roomcast-test-ca-")))


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    yield fake
    fake.stop()


@pytest.fixture
def microsoft(ca: TestCA) -> Iterator[FakeMicrosoft]:
    fake = FakeMicrosoft(ca).start()
    yield fake
    fake.stop()


@pytest.fixture
def test_environment(monkeypatch: pytest.MonkeyPatch, google: FakeGoogle, microsoft: FakeMicrosoft, ca: TestCA) -> None:
    """For in-process apps: the test process trusts the test CA and lets oauthlib use http."""
    for key, value in provider_environment(google, microsoft, ca).items():
        if not key.startswith("ROOMCAST_"):
            monkeypatch.setenv(key, value)


@pytest.fixture
def calendar_settings(
    settings: Settings, google: FakeGoogle, microsoft: FakeMicrosoft, ca: TestCA, test_environment: None
) -> Settings:
    return msgspec.structs.replace(
        settings,
        google_client_id=fake_google.CLIENT_ID,
        google_client_secret=fake_google.CLIENT_SECRET,
        google_auth_url=f"{google.base}/o/oauth2/v2/auth",
        google_token_url=f"{google.base}/token",
        google_api_url=f"{google.base}/calendar/v3",
        microsoft_client_id=fake_microsoft.CLIENT_ID,
        microsoft_client_secret=fake_microsoft.CLIENT_SECRET,
        microsoft_authority=microsoft.authority,
        microsoft_graph_url=microsoft.graph_url,
    )


@pytest.fixture
async def calendar_client(calendar_settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The real app in this process, with both providers on (no worker: jobs stay queued)."""
    async with AsyncTestClient(app=create_app(calendar_settings)) as client:
        yield client


@dataclass
class CalendarApp:
    """One real server and one real SAQ worker, wired to the fakes; helpers for what tests repeat."""

    server: ServerProcess
    http: httpx.AsyncClient
    world: World
    database_url: str
    google: FakeGoogle
    microsoft: FakeMicrosoft
    ca: TestCA

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.database_url)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def connect(self, person: Person, provider: str) -> dict[str, Any]:
        """The whole connect flow as a browser does it; returns the connection once its first sync is done."""
        url = await authorization_url(self.http, person, provider)
        callback = fake_google.approve(url) if provider == "google" else fake_microsoft.approve(url, self.ca)
        response = await self.http.get(callback.removeprefix(self.server.url))
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"/calendar?connected={provider}"
        return await self.synced(person, provider)

    async def connections(self, person: Person) -> list[dict[str, Any]]:
        response = await self.http.get(f"{API}/calendar/connections", headers=auth_header(person.token))
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()
        return items

    async def synced(self, person: Person, provider: str, timeout: float = 15) -> dict[str, Any]:
        """The person's connection to `provider` once it has synced and opened its push channel."""

        async def ready() -> dict[str, Any] | None:
            for item in await self.connections(person):
                if item["provider"] == provider and item["last_synced_at"] and item["status"] == "active":
                    rows = await self.sql(
                        "SELECT channel_id FROM calendar_connections WHERE id = $1", uuid.UUID(item["id"])
                    )
                    if rows and rows[0]["channel_id"]:
                        return item
            return None

        connection: dict[str, Any] = await eventually(ready, timeout=timeout)
        return connection

    async def meeting_from(self, person: Person, connection_id: str, event_id: str, **fields: Any) -> dict[str, Any]:
        body = {"source": {"connection_id": connection_id, "calendar_event_id": event_id}, **fields}
        response = await self.http.post(f"{API}/meetings", json=body, headers=auth_header(person.token))
        assert response.status_code == 201, response.text
        meeting: dict[str, Any] = response.json()
        return meeting


async def authorization_url(http: httpx.AsyncClient, person: Person, provider: str) -> str:
    response = await http.get(f"{API}/calendar/{provider}/connect", headers=auth_header(person.token))
    assert response.status_code == 200, response.text
    url: str = response.json()["authorization_url"]
    return url


@contextlib.asynccontextmanager
async def running_calendar_app(
    server_env: dict[str, str],
    database_url: str,
    settings: Settings,
    google: FakeGoogle,
    microsoft: FakeMicrosoft,
    ca: TestCA,
    **extra: str,
) -> AsyncIterator[CalendarApp]:
    port = free_port()
    env = {
        **server_env,
        **provider_environment(google, microsoft, ca),
        "ROOMCAST_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **extra,
    }
    server = ServerProcess(env=env, port=port).start()
    try:
        server.wait_ready()
        with running_workers(env, 1):
            async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
                yield CalendarApp(server, http, World(database_url, settings), database_url, google, microsoft, ca)
    finally:
        server.stop()


@pytest.fixture
async def calendar_app(
    server_env: dict[str, str],
    database_url: str,
    settings: Settings,
    google: FakeGoogle,
    microsoft: FakeMicrosoft,
    ca: TestCA,
) -> AsyncIterator[CalendarApp]:
    async with running_calendar_app(server_env, database_url, settings, google, microsoft, ca) as app:
        yield app
