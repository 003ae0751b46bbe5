"""`POST /auth/password-reset` and `/confirm` over REST, and `roomcast reset-link` (no mail server needed).

Links here come from `roomcast reset-link EMAIL`, the operator's way to reset without mail.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.helpers import API, PASSWORD, assert_error, auth_header, login, register_user, unique_email
from tests.support import run_cli

NEW_PASSWORD = "reset-new-passphrase"


def reset_link(server_env: dict[str, str], email: str) -> str:
    result = run_cli("reset-link", email, env={**server_env, "ROOMCAST_PUBLIC_URL": "https://rooms.example.org/"})
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip()
    assert link.startswith("https://rooms.example.org/reset#token="), link
    return link


def token_of(link: str) -> str:
    return urlsplit(link).fragment.removeprefix("token=")


async def confirm(http: httpx.AsyncClient, token: str, new_password: str = NEW_PASSWORD) -> httpx.Response:
    return await http.post(f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": new_password})


async def test_request_answers_202_for_anyone(client: httpx.AsyncClient) -> None:
    account = await register_user(client)
    for email in (account["user"]["email"], unique_email("nobody")):
        response = await client.post(f"{API}/auth/password-reset", json={"email": email})
        assert response.status_code == 202, response.text
    for body in ({"email": "not an email"}, {}, {"email": 5}, {"email": "a@b.example", "x": 1}):
        assert_error(await client.post(f"{API}/auth/password-reset", json=body), 422, "validation_error")


async def test_five_per_email_then_429(client: httpx.AsyncClient) -> None:
    email = unique_email("limited")
    for _ in range(5):
        assert (await client.post(f"{API}/auth/password-reset", json={"email": email})).status_code == 202
    response = await client.post(f"{API}/auth/password-reset", json={"email": email.upper()})
    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    other = await client.post(f"{API}/auth/password-reset", json={"email": unique_email("other")})
    assert other.status_code == 202  # another email from the same address is still fine


async def test_fifty_per_client_address_then_429(client: httpx.AsyncClient) -> None:
    for _ in range(50):
        assert (await client.post(f"{API}/auth/password-reset", json={"email": unique_email()})).status_code == 202
    response = await client.post(f"{API}/auth/password-reset", json={"email": unique_email()})
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0


async def test_nothing_is_stored_without_mail(client: httpx.AsyncClient, database_url: str) -> None:
    """With no ROOMCAST_SMTP_URL the request is a no-op (the operator uses `roomcast reset-link`)."""
    account = await register_user(client)
    assert (
        await client.post(f"{API}/auth/password-reset", json={"email": account["user"]["email"]})
    ).status_code == 202
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM password_reset_tokens") == 0
    finally:
        await connection.close()


async def test_reset_link_sets_the_password_once_and_revokes_every_login(
    client: httpx.AsyncClient, server_env: dict[str, str], database_url: str
) -> None:
    account = await register_user(client)
    email = account["user"]["email"]
    other = await login(client, email)
    link = reset_link(server_env, email.upper())
    token = token_of(link)

    connection = await asyncpg.connect(database_url)
    try:  # only the hash is stored
        stored = await connection.fetchval("SELECT token_hash FROM password_reset_tokens")
        assert stored == hashlib.sha256(token.encode()).hexdigest()
    finally:
        await connection.close()

    weak = await confirm(client, token, "short")
    error = assert_error(weak, 422, "validation_error")
    assert error["details"][0]["key"] == "new_password"
    assert (await client.get(f"{API}/me", headers=auth_header(other["access_token"]))).status_code == 200

    response = await confirm(client, token)
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["user"] == account["user"] and session["token_type"] == "bearer"
    for old in (account, other):
        assert_error(await client.get(f"{API}/me", headers=auth_header(old["access_token"])), 401, "unauthorized")
    assert (await client.get(f"{API}/me", headers=auth_header(session["access_token"]))).status_code == 200
    assert_error(await confirm(client, token, "another new one"), 400, "bad_request")
    await login(client, email, NEW_PASSWORD)
    refused = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert_error(refused, 401, "unauthorized")


@pytest.mark.parametrize("token", ["", "forged-token", "x" * 5000, "A" * 43])
async def test_forged_tokens_are_400(client: httpx.AsyncClient, token: str) -> None:
    assert_error(await confirm(client, token), 400, "bad_request")


async def test_expired_token_is_400(client: httpx.AsyncClient, server_env: dict[str, str], database_url: str) -> None:
    account = await register_user(client)
    token = token_of(reset_link(server_env, account["user"]["email"]))
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("UPDATE password_reset_tokens SET expires_at = now() - interval '1 second'")
    finally:
        await connection.close()
    assert_error(await confirm(client, token), 400, "bad_request")
    await login(client, account["user"]["email"])  # the password did not change


async def test_a_new_link_does_not_extend_an_old_one(
    client: httpx.AsyncClient, server_env: dict[str, str], database_url: str
) -> None:
    account = await register_user(client)
    first = token_of(reset_link(server_env, account["user"]["email"]))
    connection = await asyncpg.connect(database_url)
    try:
        before = await connection.fetchval("SELECT expires_at FROM password_reset_tokens")
        second = token_of(reset_link(server_env, account["user"]["email"]))
        rows = await connection.fetch("SELECT token_hash, expires_at FROM password_reset_tokens ORDER BY created_at")
    finally:
        await connection.close()
    assert first != second and len(rows) == 2
    assert rows[0]["expires_at"] == before
    assert (await confirm(client, first)).status_code == 200
    assert_error(await confirm(client, second), 400, "bad_request")  # spending one link spends the others


async def test_changing_the_password_spends_open_links(client: httpx.AsyncClient, server_env: dict[str, str]) -> None:
    account = await register_user(client)
    token = token_of(reset_link(server_env, account["user"]["email"]))
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = await client.post(f"{API}/me/password", json=body, headers=auth_header(account["access_token"]))
    assert changed.status_code == 200
    assert_error(await confirm(client, token), 400, "bad_request")


def test_reset_link_for_an_unknown_email(server_env: dict[str, str]) -> None:
    result = run_cli("reset-link", unique_email("nobody"), env=server_env)
    assert result.returncode == 1
    assert "no account" in result.stderr and result.stdout == ""
    bad = run_cli("reset-link", "not-an-email", env=server_env)
    assert bad.returncode == 2 and "email" in bad.stderr


async def test_reset_clears_the_failed_login_limit(client: httpx.AsyncClient, server_env: dict[str, str]) -> None:
    account = await register_user(client)
    email = account["user"]["email"]
    for _ in range(10):
        await client.post(f"{API}/auth/login", json={"email": email, "password": "wrong guess!"})
    assert_error(
        await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD}), 429, "rate_limited"
    )
    assert (await confirm(client, token_of(reset_link(server_env, email)))).status_code == 200
    await login(client, email, NEW_PASSWORD)


def test_smtp_settings_are_checked_at_start() -> None:
    from server.settings import SettingsError, load_settings

    base = {"ROOMCAST_SECRET_KEY": "k" * 40}
    for good in ("smtp://mail:25", "smtps://u:p%40ss@mail.example:465", "smtp://u:p@mail:587?starttls=true"):
        assert load_settings({**base, "ROOMCAST_SMTP_URL": good}, env_file=None).smtp_url == good
    for bad in ("http://mail", "smtp://", "smtp://mail:x", "smtps://mail?starttls=true", "smtp://mail?tls=1"):
        with pytest.raises(SettingsError, match="ROOMCAST_SMTP_URL"):
            load_settings({**base, "ROOMCAST_SMTP_URL": bad}, env_file=None)
    assert load_settings({**base, "ROOMCAST_MAIL_FROM": "Rooms <rooms@example.org>"}, env_file=None).mail_from
    with pytest.raises(SettingsError, match="ROOMCAST_MAIL_FROM"):
        load_settings({**base, "ROOMCAST_MAIL_FROM": "nobody"}, env_file=None)
