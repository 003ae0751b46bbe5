"""Property: whatever JSON (or non-JSON) arrives at an auth or setup endpoint, the answer is never a 500,
and an error answer leaves every table exactly as it was (SPEC section 2, "Bad input").

Bodies are drawn from three families: any JSON value, objects whose keys are the endpoint's own
fields with arbitrary values (these get past the outer shape and exercise the field rules), and
raw bytes. A modest number of examples per endpoint keeps the suite fast; set
`ROOMCAST_FUZZ_EXAMPLES=500` for a longer hunt.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from server.settings import Settings
from tests.helpers import API, auth_header, client_with, live_meeting, register_user

Client = AsyncTestClient  # type: ignore[type-arg]
TABLES = ("users", "refresh_tokens", "api_keys", "meetings", "meeting_members")
EXAMPLES = hypothesis_settings(
    max_examples=int(os.environ.get("ROOMCAST_FUZZ_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
SETTINGS_FIELDS = ["moderation", "anonymous_questions", "max_question_length", "blocked_words"]
MEETING_FIELDS = ["title", "description", "starts_at", "ends_at", "settings", "status"]


def shaped(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    value = JSON | st.sampled_from(["post", "pre", "live", "ended", "2030-01-01T10:00:00Z", "a@b.co", "x" * 9])
    nested = st.dictionaries(st.sampled_from(SETTINGS_FIELDS), value, max_size=4)
    return st.dictionaries(st.sampled_from(fields), value | nested, max_size=len(fields))


def bodies(fields: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        JSON.map(lambda v: ("json", v)),
        shaped(fields).map(lambda v: ("json", v)),
        st.binary(max_size=40).map(lambda v: ("raw", v)),
    )


async def snapshot(database_url: str) -> dict[str, tuple[int, str]]:
    connection = await asyncpg.connect(database_url)
    try:
        result = {}
        for table in TABLES:
            row = await connection.fetchrow(
                f"SELECT count(*) AS n, coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS digest "
                f"FROM {table} t"
            )
            result[table] = (row["n"], row["digest"])
        return result
    finally:
        await connection.close()


class World:
    """An owner with a live meeting, against an app whose address limits will not get in the way."""

    def __init__(self, client: Client, owner: dict[str, Any], meeting: dict[str, Any]) -> None:
        self.client = client
        self.owner = owner
        self.meeting = meeting


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    async with client_with(settings, register_per_hour=100_000, join_per_minute=100_000) as client:
        owner = await register_user(client)
        meeting = await live_meeting(client, owner["access_token"])
        yield World(client, owner, meeting)


async def send_and_check(world: World, database_url: str, method: str, path: str, body: Any, auth: bool) -> None:
    before = await snapshot(database_url)
    kind, value = body
    headers = auth_header(world.owner["access_token"]) if auth else {}
    if kind == "json":
        response = await world.client.request(method, f"{API}{path}", json=value, headers=headers)
    else:
        headers["content-type"] = "application/json"
        response = await world.client.request(method, f"{API}{path}", content=value, headers=headers)
    assert response.status_code < 500, (method, path, value, response.text)
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}
        assert await snapshot(database_url) == before, (method, path, value, response.status_code)


@EXAMPLES
@given(body=bodies(["email", "password", "display_name"]))
async def test_register(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "POST", "/auth/register", body, auth=False)


@EXAMPLES
@given(body=bodies(["email", "password"]))
async def test_login(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "POST", "/auth/login", body, auth=False)


@EXAMPLES
@given(body=bodies(["refresh_token"]))
async def test_refresh(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "POST", "/auth/refresh", body, auth=False)


@EXAMPLES
@given(body=bodies(["refresh_token"]))
async def test_logout(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "POST", "/auth/logout", body, auth=False)


@EXAMPLES
@given(body=bodies(["name"]))
async def test_create_api_key(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "POST", "/api-keys", body, auth=True)


@EXAMPLES
@given(body=bodies(MEETING_FIELDS))
async def test_create_meeting(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "POST", "/meetings", body, auth=True)


@EXAMPLES
@given(body=bodies(MEETING_FIELDS))
async def test_patch_meeting(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "PATCH", f"/meetings/{world.meeting['id']}", body, auth=True)


@EXAMPLES
@given(body=bodies(["email"]))
async def test_add_presenter(world: World, database_url: str, body: Any) -> None:
    await send_and_check(world, database_url, "POST", f"/meetings/{world.meeting['id']}/presenters", body, auth=True)


@EXAMPLES
@given(body=bodies(["join_code", "display_name"]), with_user=st.booleans())
async def test_join(world: World, database_url: str, body: Any, with_user: bool) -> None:
    await send_and_check(world, database_url, "POST", "/meetings/join", body, auth=with_user)


@EXAMPLES
@given(limit=st.text(max_size=8), cursor=st.text(max_size=40))
async def test_list_query(world: World, limit: str, cursor: str) -> None:
    response = await world.client.get(
        f"{API}/meetings", params={"limit": limit, "cursor": cursor}, headers=auth_header(world.owner["access_token"])
    )
    assert response.status_code < 500, (limit, cursor, response.text)


@EXAMPLES
@given(header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
async def test_authorization_header(world: World, header: str) -> None:
    response = await world.client.get(f"{API}/me", headers={"Authorization": header})
    assert response.status_code in (200, 401), (header, response.text)
