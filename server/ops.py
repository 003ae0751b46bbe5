"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, Router, get
from litestar.di import NamedDependency

from server.services import Services

CHECK_TIMEOUT_S = 2.0


@get("/health/live", sync_to_thread=False, tags=["ops"])
def live() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@get("/health/ready", tags=["ops"])
async def ready(services: NamedDependency[Services]) -> Response[dict[str, Any]]:
    """200 only when PostgreSQL and Redis both answer; 503 naming the ones that did not."""
    postgres, redis = await asyncio.gather(
        _check(services.db.ping()),
        _check(services.redis.ping()),
    )
    checks = {"postgres": postgres, "redis": redis}
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        return Response(
            {
                "error": {
                    "code": "unavailable",
                    "message": f"not ready: {', '.join(failed)} did not answer",
                    "details": checks,
                }
            },
            status_code=503,
        )
    return Response({"status": "ok", "checks": checks})


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as err:
        return f"failed: {type(err).__name__}"
    return "ok"


router = Router(path="/", route_handlers=[live, ready])
