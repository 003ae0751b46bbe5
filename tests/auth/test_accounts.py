"""SPEC section 3 "Auth": register, login, refresh, logout, me, through HTTP on the real app and database."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import statistics
import time
import uuid
from typing import Any

import asyncpg
import jwt
from argon2 import PasswordHasher
from litestar.testing import AsyncTestClient

from server.settings import Settings
from tests.helpers import (
    API,
    PASSWORD,
    assert_error,
    auth_header,
    client_with,
    join_as_guest,
    live_meeting,
    login,
    register_user,
    unique_email,
)

Client = AsyncTestClient  # type: ignore[type-arg]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def assert_session(session: dict[str, Any], email: str) -> None:
    assert set(session) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    assert session["token_type"] == "bearer"
    assert isinstance(session["expires_in"], int) and session["expires_in"] > 0
    assert session["access_token"] and session["refresh_token"]
    user = session["user"]
    assert set(user) == {"id", "email", "display_name", "created_at"}
    assert user["email"] == email
    uuid.UUID(user["id"])
    assert ISO_Z.match(user["created_at"]), user["created_at"]


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


# --- register ------------------------------------------------------------------------------


async def test_register_returns_a_session_and_stores_only_an_argon2id_hash(client: Client, database_url: str) -> None:
    email = unique_email()
    response = await client.post(
        f"{API}/auth/register", json={"email": email.upper(), "password": PASSWORD, "display_name": "  Ada  "}
    )
    assert response.status_code == 201, response.text
    session = response.json()
    assert_session(session, email)
    assert session["user"]["display_name"] == "Ada"
    me = await client.get(f"{API}/me", headers=auth_header(session["access_token"]))
    assert me.status_code == 200
    assert me.json() == session["user"]

    [row] = await fetch(database_url, "SELECT email, password_hash FROM users")
    assert row["email"] == email
    assert PASSWORD not in row["password_hash"]
    assert row["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_register_taken_email_is_409_case_insensitively(client: Client) -> None:
    email = unique_email()
    await register_user(client, email)
    response = await client.post(
        f"{API}/auth/register", json={"email": email.upper(), "password": PASSWORD, "display_name": "Twin"}
    )
    assert_error(response, 409, "conflict")


async def test_concurrent_duplicate_registration_gives_one_201_and_one_409(client: Client, database_url: str) -> None:
    email = unique_email()
    body = {"email": email, "password": PASSWORD, "display_name": "Racer"}
    first, second = await asyncio.gather(
        client.post(f"{API}/auth/register", json=body),
        client.post(f"{API}/auth/register", json={**body, "email": email.title()}),
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    loser = first if first.status_code == 409 else second
    assert_error(loser, 409, "conflict")
    assert len(await fetch(database_url, "SELECT 1 FROM users")) == 1


async def test_register_validation_errors_name_the_field_and_store_nothing(client: Client, database_url: str) -> None:
    good = {"email": unique_email(), "password": PASSWORD, "display_name": "Ada"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "email": "not-an-email"}, "email"),
        ({**good, "email": "a@b"}, "email"),
        ({**good, "email": "two@@example.com"}, "email"),
        ({**good, "email": "sp ace@example.com"}, "email"),
        ({**good, "password": "short77"}, "password"),
        ({**good, "display_name": ""}, "display_name"),
        ({**good, "display_name": "   "}, "display_name"),
        ({**good, "display_name": "x" * 81}, "display_name"),
        ({**good, "display_name": "bell\x07"}, "display_name"),
        ({"email": good["email"], "password": PASSWORD}, "display_name"),
        ({**good, "password": 12345678}, "password"),
        ({**good, "extra": True}, "extra"),
    ]
    for body, field in cases:
        error = assert_error(await client.post(f"{API}/auth/register", json=body), 422, "validation_error")
        assert error["details"][0]["key"] == field, (body, error)
    assert await fetch(database_url, "SELECT 1 FROM users") == []


async def test_register_malformed_body_is_400_and_a_missing_one_422(client: Client) -> None:
    headers = {"content-type": "application/json"}
    assert_error(await client.post(f"{API}/auth/register", content=b"{nope", headers=headers), 400, "bad_request")
    assert_error(await client.post(f"{API}/auth/register"), 422, "validation_error")
    error = assert_error(await client.post(f"{API}/auth/register", json=[1, 2]), 422, "validation_error")
    assert error["details"]


async def test_register_is_limited_per_client_address(settings: Settings) -> None:
    async with client_with(settings, register_per_hour=3) as client:
        for _ in range(3):
            await register_user(client)
        response = await client.post(
            f"{API}/auth/register", json={"email": unique_email(), "password": PASSWORD, "display_name": "Late"}
        )
        error = assert_error(response, 429, "rate_limited")
        assert 0 < int(response.headers["retry-after"]) <= 3600
        assert error["details"]["retry_after_s"] == int(response.headers["retry-after"])


# --- login ---------------------------------------------------------------------------------


async def test_login_returns_a_new_session(client: Client) -> None:
    registered = await register_user(client)
    email = registered["user"]["email"]
    response = await client.post(f"{API}/auth/login", json={"email": f" {email.upper()} ", "password": PASSWORD})
    assert response.status_code == 200, response.text
    session = response.json()
    assert_session(session, email)
    assert session["refresh_token"] != registered["refresh_token"]
    assert session["user"] == registered["user"]


async def test_login_with_bad_credentials_is_401(client: Client) -> None:
    registered = await register_user(client)
    email = registered["user"]["email"]
    assert_error(
        await client.post(f"{API}/auth/login", json={"email": email, "password": "wrong password"}),
        401,
        "unauthorized",
    )
    assert_error(
        await client.post(f"{API}/auth/login", json={"email": unique_email(), "password": PASSWORD}),
        401,
        "unauthorized",
    )
    assert_error(await client.post(f"{API}/auth/login", json={"email": email}), 422, "validation_error")


async def test_login_of_a_guest_is_impossible(client: Client) -> None:
    owner = await register_user(client)
    meeting = await live_meeting(client, owner["access_token"])
    await join_as_guest(client, meeting["join_code"], "Gus")
    assert_error(await client.post(f"{API}/auth/login", json={"email": "", "password": ""}), 401, "unauthorized")


async def test_login_is_limited_after_10_failures_per_email(client: Client) -> None:
    victim = (await register_user(client))["user"]["email"]
    bystander = (await register_user(client))["user"]["email"]
    for _ in range(10):
        bad = await client.post(f"{API}/auth/login", json={"email": victim, "password": "guess guess"})
        assert_error(bad, 401, "unauthorized")
    limited = await client.post(f"{API}/auth/login", json={"email": victim.upper(), "password": PASSWORD})
    error = assert_error(limited, 429, "rate_limited")
    retry_after = int(limited.headers["retry-after"])
    assert 0 < retry_after <= 15 * 60
    assert error["details"]["retry_after_s"] == retry_after
    await login(client, bystander)  # another email from the same address is not locked out


async def test_login_is_limited_after_100_failures_per_address(client: Client) -> None:
    for batch in range(10):
        responses = await asyncio.gather(
            *(
                client.post(f"{API}/auth/login", json={"email": f"nobody{batch}-{i}@example.com", "password": "x"})
                for i in range(10)
            )
        )
        for response in responses:
            assert_error(response, 401, "unauthorized")
    registered = await register_user(client)
    limited = await client.post(f"{API}/auth/login", json={"email": registered["user"]["email"], "password": PASSWORD})
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0


async def test_a_successful_login_clears_the_email_count(client: Client) -> None:
    email = (await register_user(client))["user"]["email"]
    for _ in range(9):
        assert_error(
            await client.post(f"{API}/auth/login", json={"email": email, "password": "nope nope"}), 401, "unauthorized"
        )
    await login(client, email)
    for _ in range(9):
        assert_error(
            await client.post(f"{API}/auth/login", json={"email": email, "password": "nope nope"}), 401, "unauthorized"
        )
    await login(client, email)


async def test_login_upgrades_an_outdated_hash(client: Client, database_url: str) -> None:
    email = (await register_user(client))["user"]["email"]
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("UPDATE users SET password_hash = $1 WHERE email = $2", old, email)
        await login(client, email)
        stored = await connection.fetchval("SELECT password_hash FROM users WHERE email = $1", email)
    finally:
        await connection.close()
    assert stored != old
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    await login(client, email)


async def test_unknown_email_costs_about_as_much_as_a_wrong_password(client: Client) -> None:
    email = (await register_user(client))["user"]["email"]

    async def median_s(body: dict[str, str]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            response = await client.post(f"{API}/auth/login", json=body)
            times.append(time.perf_counter() - start)
            assert response.status_code == 401
        return statistics.median(times)

    wrong_password = await median_s({"email": email, "password": "wrong password"})
    unknown_email = await median_s({"email": unique_email(), "password": "wrong password"})
    assert 0.4 < unknown_email / wrong_password < 2.5, (unknown_email, wrong_password)


# --- refresh and logout --------------------------------------------------------------------


async def refresh(client: Client, token: str) -> Any:
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_a_spent_token_revokes_the_whole_login(client: Client, database_url: str) -> None:
    first = await register_user(client)
    other_login = await login(client, first["user"]["email"])

    second_response = await refresh(client, first["refresh_token"])
    assert second_response.status_code == 200, second_response.text
    second = second_response.json()
    assert_session(second, first["user"]["email"])
    assert second["refresh_token"] != first["refresh_token"]
    third = (await refresh(client, second["refresh_token"])).json()
    assert (await client.get(f"{API}/me", headers=auth_header(third["access_token"]))).status_code == 200

    # replaying a spent token: 401, and every token of that login dies with it
    assert_error(await refresh(client, first["refresh_token"]), 401, "unauthorized")
    assert_error(await refresh(client, third["refresh_token"]), 401, "unauthorized")
    assert_error(await client.get(f"{API}/me", headers=auth_header(third["access_token"])), 401, "unauthorized")
    assert_error(await client.get(f"{API}/me", headers=auth_header(first["access_token"])), 401, "unauthorized")
    rows = await fetch(
        database_url,
        "SELECT revoked_at FROM refresh_tokens WHERE family_id = (SELECT family_id "
        "FROM refresh_tokens ORDER BY created_at LIMIT 1)",
    )
    assert len(rows) == 3 and all(row["revoked_at"] is not None for row in rows)

    # another login of the same user is untouched
    assert (await client.get(f"{API}/me", headers=auth_header(other_login["access_token"]))).status_code == 200
    assert (await refresh(client, other_login["refresh_token"])).status_code == 200


async def test_refresh_with_unknown_or_malformed_tokens(client: Client) -> None:
    assert_error(await refresh(client, "not-a-token"), 401, "unauthorized")
    assert_error(await refresh(client, ""), 401, "unauthorized")
    assert_error(await client.post(f"{API}/auth/refresh", json={"token": "x"}), 422, "validation_error")
    assert_error(await client.post(f"{API}/auth/refresh", json={"refresh_token": 5}), 422, "validation_error")


async def test_concurrent_refreshes_of_one_token_give_one_session(client: Client) -> None:
    session = await register_user(client)
    results = await asyncio.gather(*(refresh(client, session["refresh_token"]) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [200, 401, 401]


async def test_logout_ends_the_login(client: Client) -> None:
    session = await register_user(client)
    other = await login(client, session["user"]["email"])
    response = await client.post(f"{API}/auth/logout", json={"refresh_token": session["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await refresh(client, session["refresh_token"]), 401, "unauthorized")
    assert_error(await client.get(f"{API}/me", headers=auth_header(session["access_token"])), 401, "unauthorized")
    assert (await client.get(f"{API}/me", headers=auth_header(other["access_token"]))).status_code == 200
    # logging out again, or with a token nobody knows, is still 204
    assert (
        await client.post(f"{API}/auth/logout", json={"refresh_token": session["refresh_token"]})
    ).status_code == 204
    assert (await client.post(f"{API}/auth/logout", json={"refresh_token": "unknown"})).status_code == 204
    assert_error(await client.post(f"{API}/auth/logout", json={}), 422, "validation_error")


# --- me and credentials --------------------------------------------------------------------


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_me_refuses_every_bad_credential(client: Client, settings: Settings, database_url: str) -> None:
    session = await register_user(client)
    user_id = session["user"]["id"]
    now = int(time.time())
    claims = {"sub": user_id, "typ": "access", "iat": now, "exp": now + 600}
    forged = jwt.encode(claims, "another-secret-key-of-enough-length!!", algorithm="HS256")
    expired = jwt.encode({**claims, "iat": now - 1000, "exp": now - 10}, settings.secret_key, algorithm="HS256")
    alg_none = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    wrong_alg = jwt.encode(claims, settings.secret_key, algorithm="HS512")
    no_exp = jwt.encode({"sub": user_id, "typ": "access", "iat": now}, settings.secret_key, algorithm="HS256")
    tampered = session["access_token"][:-4] + ("AAAA" if not session["access_token"].endswith("AAAA") else "BBBB")
    for token in (forged, expired, alg_none, wrong_alg, no_exp, tampered, "garbage", "rk_not-a-key"):
        assert_error(await client.get(f"{API}/me", headers=auth_header(token)), 401, "unauthorized")
    for header in ("", "Bearer", "Bearer ", f"Basic {session['access_token']}", session["access_token"]):
        assert_error(await client.get(f"{API}/me", headers={"Authorization": header}), 401, "unauthorized")
    response = await client.get(f"{API}/me")
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    valid = jwt.encode(claims, settings.secret_key, algorithm="HS256")  # a well-formed token of our own
    assert (await client.get(f"{API}/me", headers=auth_header(valid))).status_code == 200

    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user_id))
    finally:
        await connection.close()
    assert_error(await client.get(f"{API}/me", headers=auth_header(session["access_token"])), 401, "unauthorized")
    assert_error(await refresh(client, session["refresh_token"]), 401, "unauthorized")


async def test_guest_tokens_get_nothing_from_user_endpoints(client: Client) -> None:
    owner = await register_user(client)
    meeting = await live_meeting(client, owner["access_token"])
    guest = auth_header((await join_as_guest(client, meeting["join_code"], "Gus"))["guest_token"])
    assert_error(await client.get(f"{API}/me", headers=guest), 403, "forbidden")
    assert_error(await client.get(f"{API}/api-keys", headers=guest), 403, "forbidden")
    assert_error(await client.post(f"{API}/api-keys", json={"name": "k"}, headers=guest), 403, "forbidden")
    assert_error(await client.get(f"{API}/meetings", headers=guest), 403, "forbidden")
    assert_error(await client.post(f"{API}/meetings", json={"title": "t"}, headers=guest), 403, "forbidden")


async def test_a_guest_token_cannot_pass_as_an_access_token(client: Client, settings: Settings) -> None:
    owner = await register_user(client)
    meeting = await live_meeting(client, owner["access_token"])
    guest_token = (await join_as_guest(client, meeting["join_code"], "Gus"))["guest_token"]
    claims = jwt.decode(guest_token, settings.secret_key, algorithms=["HS256"])
    as_access = jwt.encode({**claims, "typ": "access"}, settings.secret_key, algorithm="HS256")
    assert_error(await client.get(f"{API}/me", headers=auth_header(as_access)), 401, "unauthorized")
    owner_as_guest = jwt.encode(
        {**claims, "sub": owner["user"]["id"]}, settings.secret_key, algorithm="HS256"
    )  # a user id in a guest token
    assert_error(await client.get(f"{API}/me", headers=auth_header(owner_as_guest)), 401, "unauthorized")
