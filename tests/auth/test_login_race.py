"""Issue 16 defect 5: the login limit is reserved before the slow password hash, not counted after it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from litestar.testing import AsyncTestClient

from tests.helpers import API, PASSWORD, assert_error, login, register_user
from tests.support import ServerProcess

Client = AsyncTestClient  # type: ignore[type-arg]
CONCURRENT = 40
LIMIT = 10


async def test_forty_concurrent_wrong_passwords_verify_at_most_the_limit(
    start_servers: Callable[..., list[ServerProcess]],
) -> None:
    """Through a real server: the in-process test client does not run requests truly at once."""
    (server,) = start_servers(1)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        email = (await register_user(client))["user"]["email"]
        answers = await asyncio.gather(
            *(
                client.post(f"{API}/auth/login", json={"email": email, "password": "guess guess"})
                for _ in range(CONCURRENT)
            )
        )
        limited = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    statuses = sorted(answer.status_code for answer in answers)
    verified = statuses.count(401)  # a 401 means the password was hashed and compared
    assert verified <= LIMIT, statuses  # before the fix: 40 of 40 were verified
    assert statuses.count(429) == CONCURRENT - verified, statuses
    assert_error(limited, 429, "rate_limited")


async def test_a_successful_login_gives_its_reservation_back(client: Client) -> None:
    """Only failures count: 105 good logins from one address are never limited (the address allows 100 failures)."""
    email = (await register_user(client))["user"]["email"]
    for _ in range(3):
        await asyncio.gather(*(login(client, email) for _ in range(35)))
