"""SPEC section 3 "Auth", API keys: created once in clear, listed without the key, revoked at once everywhere."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

import asyncpg
import httpx
from litestar.testing import AsyncTestClient

from tests.helpers import API, assert_error, auth_header, create_api_key, register_user
from tests.support import ServerProcess

Client = AsyncTestClient  # type: ignore[type-arg]


async def test_create_list_use_and_delete_a_key(client: Client, database_url: str) -> None:
    session = await register_user(client)
    token = session["access_token"]
    response = await client.post(f"{API}/api-keys", json={"name": "  CI deploys  "}, headers=auth_header(token))
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "key", "created_at"}
    assert created["name"] == "CI deploys"
    assert created["key"].startswith("rk_") and len(created["key"]) >= 3 + 43  # 32 random bytes, base64url
    assert created["created_at"].endswith("Z")

    listed = (await client.get(f"{API}/api-keys", headers=auth_header(token))).json()
    assert listed == [
        {"id": created["id"], "name": "CI deploys", "created_at": created["created_at"], "last_used_at": None}
    ]

    me = await client.get(f"{API}/me", headers=auth_header(created["key"]))
    assert me.status_code == 200
    assert me.json() == session["user"]
    [key] = (await client.get(f"{API}/api-keys", headers=auth_header(created["key"]))).json()
    assert key["last_used_at"] is not None and key["last_used_at"].endswith("Z")
    assert "key" not in key

    connection = await asyncpg.connect(database_url)
    try:
        stored = await connection.fetchval("SELECT key_hash FROM api_keys")
    finally:
        await connection.close()
    assert stored == hashlib.sha256(created["key"].encode()).hexdigest()

    deleted = await client.delete(f"{API}/api-keys/{created['id']}", headers=auth_header(token))
    assert deleted.status_code == 204
    assert_error(await client.get(f"{API}/me", headers=auth_header(created["key"])), 401, "unauthorized")
    assert (await client.get(f"{API}/api-keys", headers=auth_header(token))).json() == []
    assert_error(await client.delete(f"{API}/api-keys/{created['id']}", headers=auth_header(token)), 404, "not_found")


async def test_last_used_at_is_written_at_most_once_a_minute(client: Client, database_url: str) -> None:
    token = (await register_user(client))["access_token"]
    key = (await create_api_key(client, token))["key"]
    connection = await asyncpg.connect(database_url)
    try:
        await client.get(f"{API}/me", headers=auth_header(key))
        first = await connection.fetchval("SELECT last_used_at FROM api_keys")
        for _ in range(3):
            assert (await client.get(f"{API}/me", headers=auth_header(key))).status_code == 200
        assert await connection.fetchval("SELECT last_used_at FROM api_keys") == first
    finally:
        await connection.close()
    assert first is not None


async def test_keys_belong_to_their_user(client: Client) -> None:
    alice = (await register_user(client))["access_token"]
    bob = (await register_user(client))["access_token"]
    alices_key = await create_api_key(client, alice, "alice's")
    assert (await client.get(f"{API}/api-keys", headers=auth_header(bob))).json() == []
    assert_error(await client.delete(f"{API}/api-keys/{alices_key['id']}", headers=auth_header(bob)), 404, "not_found")
    assert (await client.get(f"{API}/me", headers=auth_header(alices_key["key"]))).status_code == 200


async def test_api_key_endpoint_failures(client: Client) -> None:
    token = (await register_user(client))["access_token"]
    headers = auth_header(token)
    assert_error(await client.post(f"{API}/api-keys", json={"name": ""}, headers=headers), 422, "validation_error")
    assert_error(
        await client.post(f"{API}/api-keys", json={"name": "x" * 101}, headers=headers), 422, "validation_error"
    )
    assert_error(await client.post(f"{API}/api-keys", json={"name": 7}, headers=headers), 422, "validation_error")
    assert_error(await client.post(f"{API}/api-keys", json={}, headers=headers), 422, "validation_error")
    assert_error(await client.post(f"{API}/api-keys", json={"name": "k"}), 401, "unauthorized")
    assert_error(await client.get(f"{API}/api-keys"), 401, "unauthorized")
    assert_error(await client.delete(f"{API}/api-keys/{uuid.uuid4()}"), 401, "unauthorized")
    assert_error(await client.delete(f"{API}/api-keys/{uuid.uuid4()}", headers=headers), 404, "not_found")
    assert_error(await client.delete(f"{API}/api-keys/not-a-uuid", headers=headers), 404, "not_found")


async def test_a_deleted_key_stops_working_on_another_server_process(
    start_servers: Callable[..., list[ServerProcess]],
) -> None:
    first, second = start_servers(2)
    async with httpx.AsyncClient(base_url=first.url) as a, httpx.AsyncClient(base_url=second.url) as b:
        token = (await register_user(a))["access_token"]
        created = await create_api_key(a, token)
        assert (await b.get(f"{API}/me", headers=auth_header(created["key"]))).status_code == 200
        assert (await a.delete(f"{API}/api-keys/{created['id']}", headers=auth_header(token))).status_code == 204
        assert_error(await b.get(f"{API}/me", headers=auth_header(created["key"])), 401, "unauthorized")
        # and an access token from one process works on the other
        assert (await b.get(f"{API}/me", headers=auth_header(token))).status_code == 200


async def test_the_login_limit_is_shared_by_server_processes(
    start_servers: Callable[..., list[ServerProcess]],
) -> None:
    first, second = start_servers(2)
    async with httpx.AsyncClient(base_url=first.url) as a, httpx.AsyncClient(base_url=second.url) as b:
        email = (await register_user(a))["user"]["email"]
        for attempt in range(10):
            server = a if attempt % 2 else b
            response = await server.post(f"{API}/auth/login", json={"email": email, "password": "wrong guess"})
            assert_error(response, 401, "unauthorized")
        for server in (a, b):
            limited = await server.post(f"{API}/auth/login", json={"email": email, "password": "wrong guess"})
            assert_error(limited, 429, "rate_limited")
            assert int(limited.headers["retry-after"]) > 0
