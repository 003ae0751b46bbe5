"""Readiness names the service that does not answer; the server process itself serves requests."""

from __future__ import annotations

import httpx
import msgspec
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.embedded import free_port
from server.settings import Settings


async def test_ready_with_both_services(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_ready_names_redis_when_unreachable(settings: Settings) -> None:
    broken = msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with AsyncTestClient(app=create_app(broken)) as test_client:
        response = await test_client.get("/health/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert "redis" in error["message"] and "postgres" not in error["message"]
    assert error["details"]["postgres"] == "ok"


async def test_ready_names_postgres_when_unreachable(settings: Settings) -> None:
    broken = msgspec.structs.replace(settings, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    async with AsyncTestClient(app=create_app(broken)) as test_client:
        live = await test_client.get("/health/live")
        response = await test_client.get("/health/ready")
    assert live.status_code == 200
    assert response.status_code == 503
    error = response.json()["error"]
    assert "postgres" in error["message"] and "redis" not in error["message"]


def test_a_real_server_process_serves_and_stops_on_sigterm(start_servers) -> None:  # type: ignore[no-untyped-def]
    (server,) = start_servers(1)
    assert httpx.get(server.url + "/health/live").status_code == 200
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "roomcast" in page.text and "/schema" not in page.text  # no developer links
    assert httpx.get(server.url + "/schema/openapi.json").json()["info"]["title"] == "roomcast"
    tuned = [line for line in server.log().splitlines() if "server.gc_tuned" in line]
    assert len(tuned) == 1 and "50000" in tuned[0], "the serving process tunes its collector once, at start"
    assert server.stop() == 0


async def test_a_room_shard_that_does_not_answer_degrades_readiness_without_failing_it(
    settings: Settings,
    private_redis,  # type: ignore[no-untyped-def]
) -> None:
    (live,) = private_redis(1)
    dead = f"redis://:secret@127.0.0.1:{free_port()}/0"
    # the in-process client has no loopback address, so it scrapes /metrics with the token
    sharded = msgspec.structs.replace(settings, room_redis_urls=(live.url, dead), metrics_token="scrape")
    shown = dead.replace(":secret@", "")
    async with AsyncTestClient(app=create_app(sharded)) as test_client:
        response = await test_client.get("/health/ready")
        metrics = (await test_client.get("/metrics", headers={"Authorization": "Bearer scrape"})).text
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["redis_shards"] == {live.url: "up", shown: "down"}
    assert "secret" not in response.text and "secret" not in metrics
    assert f'roomcast_redis_shard_up{{shard="{live.url}"}} 1.0' in metrics
    assert f'roomcast_redis_shard_up{{shard="{shown}"}} 0.0' in metrics


async def test_readiness_lists_the_shards_when_all_answer(settings: Settings, private_redis) -> None:  # type: ignore[no-untyped-def]
    shards = private_redis(2)
    sharded = msgspec.structs.replace(settings, room_redis_urls=tuple(s.url for s in shards))
    async with AsyncTestClient(app=create_app(sharded)) as test_client:
        response = await test_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"postgres": "ok", "redis": "ok"},
        "redis_shards": {s.url: "up" for s in shards},
    }
