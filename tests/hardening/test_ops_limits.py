"""Issue 16 decisions: /metrics is for allowed addresses or a token; probing emails through presenters is limited."""

from __future__ import annotations

from server.settings import Settings
from tests.helpers import API, assert_error, auth_header, client_with, create_meeting, register_user


async def test_metrics_answer_allowed_addresses_or_the_token_only(settings: Settings) -> None:
    async with client_with(settings, metrics_token="scrape-secret") as client:  # the test client is no loopback
        assert_error(await client.get("/metrics"), 403, "forbidden")
        assert_error(await client.get("/metrics", headers=auth_header("wrong")), 403, "forbidden")
        scraped = await client.get("/metrics", headers=auth_header("scrape-secret"))
        assert scraped.status_code == 200 and "roomcast_" in scraped.text
    async with client_with(settings) as client:  # no token configured: no bearer works
        assert_error(await client.get("/metrics", headers=auth_header("")), 403, "forbidden")


async def test_adding_presenters_is_limited_per_caller(settings: Settings) -> None:
    async with client_with(settings, presenter_adds_per_hour=3) as client:
        owner = await register_user(client)
        meeting = await create_meeting(client, owner["access_token"])
        url = f"{API}/meetings/{meeting['id']}/presenters"
        for n in range(3):
            probe = await client.post(
                url, json={"email": f"nobody{n}@example.com"}, headers=auth_header(owner["access_token"])
            )
            assert_error(probe, 404, "not_found")
        limited = await client.post(url, json={"email": "x@example.com"}, headers=auth_header(owner["access_token"]))
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) > 0
