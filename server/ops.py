"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Iterator
from typing import Any

from litestar import Request, Response, Router, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from server.rest import client_address
from server.services import Services
from server.settings import Settings

CHECK_TIMEOUT_S = 2.0


@get("/health/live", sync_to_thread=False, tags=["ops"])
def live() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@get("/health/ready", tags=["ops"])
async def ready(services: NamedDependency[Services]) -> Response[dict[str, Any]]:
    """200 when PostgreSQL and Redis answer; 503 naming the ones that did not.

    With room shards (`ROOMCAST_ROOM_REDIS_URLS`), a shard that does not answer costs only its
    rooms: the answer stays 200 with `status: degraded` and `redis_shards` naming it (by its URL
    without password), so a load balancer keeps sending traffic to this process.
    """
    monitor = services.room_shards
    postgres, redis, shards = await asyncio.gather(
        _check(services.db.ping()),
        _check(services.redis.ping()),
        monitor.check() if monitor is not None else _no_shards(),
    )
    checks = {"postgres": postgres, "redis": redis}
    states = {name: "up" if up else "down" for name, up in shards.items()}
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        details: dict[str, Any] = {**checks, **({"redis_shards": states} if states else {})}
        return Response(
            {
                "error": {
                    "code": "unavailable",
                    "message": f"not ready: {', '.join(failed)} did not answer",
                    "details": details,
                }
            },
            status_code=503,
        )
    body: dict[str, Any] = {"status": "degraded" if "down" in states.values() else "ok", "checks": checks}
    if states:
        body["redis_shards"] = states
    return Response(body)


async def _no_shards() -> dict[str, bool]:
    return {}


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as err:
        return f"failed: {type(err).__name__}"
    return "ok"


@get("/metrics", tags=["ops"], include_in_schema=False)
async def metrics(request: Request[Any, Any, Any], services: NamedDependency[Services]) -> Response[Any]:
    """Prometheus text: this process's realtime metrics, plus job outcomes counted in Redis by every worker.

    Only for scrapers: a client address in `ROOMCAST_METRICS_ALLOW` (default loopback only) or the
    bearer token `ROOMCAST_METRICS_TOKEN`; anyone else gets 403.
    """
    if not metrics_allowed(request, services.settings):
        return Response(
            {"error": {"code": "forbidden", "message": "metrics are for allowed addresses or the metrics token"}},
            status_code=403,
        )
    body = services.metrics.render()
    try:
        pending: Any = services.redis.hgetall(services.key("jobs", "stats"))
        stats = await asyncio.wait_for(pending, CHECK_TIMEOUT_S)
    except Exception:
        stats = {}
    if stats:
        body += generate_latest(_Scraped(_jobs_family(stats)))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_allowed(request: Request[Any, Any, Any], settings: Settings) -> bool:
    token = settings.metrics_token
    header = request.headers.get("authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in settings.metrics_allow)


def _jobs_family(stats: dict[Any, Any]) -> CounterMetricFamily:
    """`roomcast_jobs_total{function, outcome}` from the counts every worker keeps in Redis."""
    family = CounterMetricFamily(
        "roomcast_jobs", "Jobs finished, by function and outcome (all workers)", labels=["function", "outcome"]
    )
    for field, count in sorted(stats.items()):
        function, _, outcome = (field.decode() if isinstance(field, bytes) else str(field)).rpartition(":")
        family.add_metric([function, outcome], int(count))
    return family


class _Scraped:
    """Metric families read at scrape time, rendered by prometheus-client like any registry."""

    def __init__(self, *families: Metric) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


router = Router(path="/", route_handlers=[live, ready, metrics])
