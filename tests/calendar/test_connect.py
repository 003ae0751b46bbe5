"""The connect flow against the fakes through the real client libraries, in-process (no worker needed).

google-auth-oauthlib (PKCE, `access_type=offline`, a widened scope) and msal (https authority
discovered without Microsoft's instance discovery, nonce-checked id_token) talk to the fakes over
real sockets; the state is signed, single use and bound to the user who started the flow.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from channels.broker import Broker
from server.calendar.crypto import TokenBox
from server.calendar.service import Calendar
from server.db import Database
from server.jobs import make_queue
from server.services import Services, redis_client
from server.settings import Settings
from tests.calendar.conftest import authorization_url
from tests.fakes import google as fake_google
from tests.fakes import microsoft as fake_microsoft
from tests.fakes.google import FakeGoogle
from tests.fakes.microsoft import FakeMicrosoft
from tests.fakes.tls import TestCA
from tests.helpers import API, assert_error, auth_header
from tests.wsclient import Person, World

Client = AsyncTestClient  # type: ignore[type-arg]


async def rows(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def callback(client: Client, location: str) -> httpx.Response:
    parts = urlsplit(location)
    response: httpx.Response = await client.get(f"{parts.path}?{parts.query}", follow_redirects=False)
    return response


async def consent(client: Client, person: Person, provider: str, ca: TestCA) -> str:
    """Start connecting and accept at the fake provider: the callback URL the browser would follow."""
    url = await authorization_url(client, person, provider)
    return fake_google.approve(url) if provider == "google" else fake_microsoft.approve(url, ca)


@pytest.fixture
async def person(calendar_settings: Settings) -> Person:
    return await World(calendar_settings.database_url or "", calendar_settings).user("Ada")


async def test_google_connect_stores_encrypted_tokens(
    calendar_client: Client, calendar_settings: Settings, person: Person, google: FakeGoogle, ca: TestCA
) -> None:
    url = await authorization_url(calendar_client, person, "google")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{google.base}/o/oauth2/v2/auth?")
    assert query["access_type"] == ["offline"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/api/v1/calendar/google/callback"]
    assert "https://www.googleapis.com/auth/calendar.readonly" in query["scope"][0].split()

    response = await callback(calendar_client, fake_google.approve(url))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/calendar?connected=google"

    listed = await calendar_client.get(f"{API}/calendar/connections", headers=auth_header(person.token))
    assert listed.status_code == 200
    [connection] = listed.json()
    assert set(connection) == {"id", "provider", "account_email", "status", "error", "last_synced_at", "created_at"}
    assert connection["provider"] == "google" and connection["account_email"] == "ada@example.com"
    assert connection["status"] == "active" and connection["error"] is None

    [row] = await rows(calendar_settings, "SELECT tokens FROM calendar_connections")
    refresh_token = next(iter(google.refresh_tokens))
    assert refresh_token not in row["tokens"] and "ya29." not in row["tokens"]
    plain, stale = TokenBox(calendar_settings).open(row["tokens"])
    assert not stale and msgspec.json.decode(plain)["refresh_token"] == refresh_token
    assert refresh_token not in listed.text


async def test_outlook_connect_through_msal(
    calendar_client: Client, calendar_settings: Settings, person: Person, microsoft: FakeMicrosoft, ca: TestCA
) -> None:
    url = await authorization_url(calendar_client, person, "outlook")
    assert url.startswith(f"{microsoft.login.base}/common/oauth2/v2.0/authorize?")
    assert microsoft.login.count("/common/v2.0/.well-known/openid-configuration") >= 1
    response = await callback(calendar_client, fake_microsoft.approve(url, ca))
    assert response.status_code == 303, response.text
    listed = await calendar_client.get(f"{API}/calendar/connections", headers=auth_header(person.token))
    [connection] = listed.json()
    assert connection["provider"] == "outlook" and connection["account_email"] == "ada@contoso.example"
    [row] = await rows(calendar_settings, "SELECT tokens FROM calendar_connections")
    plain, _ = TokenBox(calendar_settings).open(row["tokens"])
    assert next(iter(microsoft.refresh_tokens)) in plain.decode()  # msal's serialised cache, sealed


@pytest.mark.parametrize("provider", ["google", "outlook"])
async def test_replayed_state_is_refused_and_stores_nothing(
    calendar_client: Client, calendar_settings: Settings, person: Person, provider: str, ca: TestCA
) -> None:
    location = await consent(calendar_client, person, provider, ca)
    assert (await callback(calendar_client, location)).status_code == 303
    replay = await callback(calendar_client, location)
    assert_error(replay, 400, "bad_request")
    assert len(await rows(calendar_settings, "SELECT id FROM calendar_connections")) == 1


async def test_forged_or_foreign_state_is_refused(
    calendar_client: Client, calendar_settings: Settings, person: Person, ca: TestCA
) -> None:
    location = await consent(calendar_client, person, "google", ca)
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    payload, _, mac = query["state"].partition(".")
    intruder = await World(calendar_settings.database_url or "", calendar_settings).user("Mallory")
    # the same payload naming another user (re-encoded) keeps the old signature: refused
    decoded = msgspec.msgpack.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded[1] = intruder.id
    forged_payload = base64.urlsafe_b64encode(msgspec.msgpack.encode(decoded)).rstrip(b"=").decode()
    for state in (f"{forged_payload}.{mac}", "", "not-a-state", payload, f"{payload}.{mac[:-2]}AA"):
        response = await calendar_client.get(
            f"{parts.path}?{urlencode({**query, 'state': state})}", follow_redirects=False
        )
        assert_error(response, 400, "bad_request")
    # a Google state presented to the Outlook callback
    response = await calendar_client.get(f"/api/v1/calendar/outlook/callback?{urlencode(query)}")
    assert_error(response, 400, "bad_request")
    assert await rows(calendar_settings, "SELECT id FROM calendar_connections") == []
    # the genuine one still works once, for the user who started it
    assert (await callback(calendar_client, location)).status_code == 303
    [row] = await rows(calendar_settings, 'SELECT "user" FROM calendar_connections')
    assert str(row["user"]) == person.id


async def test_refused_consent_stores_nothing(
    calendar_client: Client, calendar_settings: Settings, person: Person
) -> None:
    url = await authorization_url(calendar_client, person, "google")
    state = parse_qs(urlsplit(url).query)["state"][0]
    response = await calendar_client.get(
        f"/api/v1/calendar/google/callback?{urlencode({'error': 'access_denied', 'state': state})}"
    )
    assert_error(response, 400, "bad_request")
    assert await rows(calendar_settings, "SELECT id FROM calendar_connections") == []


async def test_connect_needs_a_user_and_a_known_provider(calendar_client: Client, person: Person) -> None:
    assert_error(await calendar_client.get(f"{API}/calendar/google/connect"), 401, "unauthorized")
    response = await calendar_client.get(f"{API}/calendar/yahoo/connect", headers=auth_header(person.token))
    assert_error(response, 404, "not_found")
    response = await calendar_client.get(f"{API}/calendar/connections")
    assert_error(response, 401, "unauthorized")


async def test_a_provider_without_client_id_is_off(client: Client, settings: Settings) -> None:
    person = await World(settings.database_url or "", settings).user("Ada")
    headers = auth_header(person.token)
    for provider in ("google", "outlook"):
        assert_error(await client.get(f"{API}/calendar/{provider}/connect", headers=headers), 404, "not_found")
        assert_error(await client.get(f"{API}/calendar/{provider}/callback?code=x&state=y"), 404, "not_found")
        assert_error(await client.post(f"{API}/calendar/webhooks/{provider}", json={}), 404, "not_found")
    assert_error(await client.post(f"{API}/calendar/webhooks/outlook?validationToken=abc"), 404, "not_found")
    listed = await client.get(f"{API}/calendar/connections", headers=headers)
    assert listed.status_code == 200 and listed.json() == []


async def test_connections_of_others_are_not_found(
    calendar_client: Client, calendar_settings: Settings, person: Person, ca: TestCA
) -> None:
    assert (await callback(calendar_client, await consent(calendar_client, person, "google", ca))).status_code == 303
    [connection] = (await calendar_client.get(f"{API}/calendar/connections", headers=auth_header(person.token))).json()
    other = await World(calendar_settings.database_url or "", calendar_settings).user("Eve")
    headers = auth_header(other.token)
    for response in (
        await calendar_client.delete(f"{API}/calendar/connections/{connection['id']}", headers=headers),
        await calendar_client.post(f"{API}/calendar/connections/{connection['id']}/sync", headers=headers),
        await calendar_client.get(f"{API}/calendar/connections/{connection['id']}/events", headers=headers),
        await calendar_client.delete(f"{API}/calendar/connections/{uuid.uuid4()}", headers=auth_header(person.token)),
    ):
        assert_error(response, 404, "not_found")
    assert len(await rows(calendar_settings, "SELECT id FROM calendar_connections")) == 1


async def test_two_processes_refreshing_at_once_keep_the_newest_refresh_token(
    calendar_client: Client, calendar_settings: Settings, person: Person, microsoft: FakeMicrosoft, ca: TestCA
) -> None:
    """Microsoft rotates refresh tokens (the fake makes each one good once): without the per-connection
    lock around load, refresh and save, the second refresh would spend a spent token (`invalid_grant`)."""
    assert (await callback(calendar_client, await consent(calendar_client, person, "outlook", ca))).status_code == 303
    redis = redis_client(calendar_settings.redis_url)
    database = Database(calendar_settings.database_url or "", min_size=0, max_size=4)
    await database.start()
    try:
        services = Services(calendar_settings, database, redis, Broker(redis, calendar_settings.redis_prefix))
        processes = [Calendar(services, make_queue(calendar_settings, redis)) for _ in range(2)]
        [row] = await rows(calendar_settings, "SELECT * FROM calendar_connections")
        tokens = await asyncio.gather(*(c.access_token(row, force=True) for c in processes for _ in range(2)))
    finally:
        await database.close()
        await redis.aclose()
    assert len(set(tokens)) == 4  # four refreshes, one after the other, none refused
    [row] = await rows(calendar_settings, "SELECT tokens FROM calendar_connections")
    plain, _ = TokenBox(calendar_settings).open(row["tokens"])
    valid = [token for token, good in microsoft.refresh_tokens.items() if good]
    assert len(valid) == 1 and valid[0] in plain.decode()  # the newest one is stored


async def test_a_provider_that_does_not_answer_is_503_not_500(
    calendar_client: Client, person: Person, microsoft: FakeMicrosoft
) -> None:
    microsoft.login.fail("/common/v2.0/.well-known/openid-configuration", 500, {"error": "server_error"}, times=5)
    response = await calendar_client.get(f"{API}/calendar/outlook/connect", headers=auth_header(person.token))
    assert_error(response, 503, "unavailable")
