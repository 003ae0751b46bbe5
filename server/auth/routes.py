"""REST endpoints of docs/api.md "Auth": register, login, refresh, logout, API keys (`/me` is in `server.accounts`).

Bodies are untrusted: each is checked strictly against its struct (`server.rest.decode`) and then
against the rules in `server.auth.service`, before anything is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from server.auth import limits, service
from server.auth.guards import DEPENDENCIES, user_required
from server.auth.identity import Principal
from server.auth.schemas import ApiKey, ApiKeyCreated, ApiKeyIn, LoginIn, RefreshIn, RegisterIn, Session
from server.rest import Body, client_address, decode, error_responses
from server.services import Services


@post("/auth/register", status_code=201, responses=error_responses(400, 409, 422, 429))
async def register(
    data: Body[RegisterIn], request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> Session:
    """Create an account and log it in. Emails are unique case-insensitively; limited per client address."""
    await limits.check_register(services, client_address(request))
    return await service.register(services, decode(data, RegisterIn), request.headers.get("user-agent"))


@post("/auth/login", status_code=200, responses=error_responses(400, 401, 422, 429))
async def login(data: Body[LoginIn], request: Request[Any, Any, Any], services: NamedDependency[Services]) -> Session:
    """Start a session. 429 after 10 failures per email or 100 per client address within 15 minutes."""
    body = decode(data, LoginIn)
    return await service.login(services, body, client_address(request), request.headers.get("user-agent"))


@post("/auth/refresh", status_code=200, responses=error_responses(400, 401, 422))
async def refresh(data: Body[RefreshIn], services: NamedDependency[Services]) -> Session:
    """Rotate: the presented refresh token is spent. A spent one is 401 and revokes that whole login."""
    return await service.refresh(services, decode(data, RefreshIn).refresh_token)


@post("/auth/logout", status_code=204, responses=error_responses(400, 422))
async def logout(data: Body[RefreshIn], services: NamedDependency[Services]) -> None:
    """End the login the refresh token belongs to (its refresh and access tokens stop working)."""
    await service.logout(services, decode(data, RefreshIn).refresh_token)


@post("/api-keys", status_code=201, guards=[user_required], responses=error_responses(400, 401, 403, 422))
async def create_api_key(
    data: Body[ApiKeyIn], principal: NamedDependency[Principal], services: NamedDependency[Services]
) -> ApiKeyCreated:
    """A new API key (`rk_...`) for the caller; `key` appears only in this answer."""
    return await service.create_api_key(services, principal.user_id, decode(data, ApiKeyIn).name)


@get("/api-keys", guards=[user_required], responses=error_responses(401, 403))
async def list_api_keys(principal: NamedDependency[Principal], services: NamedDependency[Services]) -> list[ApiKey]:
    """The caller's API keys, oldest first, without the keys themselves."""
    return await service.list_api_keys(services, principal.user_id)


@delete("/api-keys/{key_id:uuid}", status_code=204, guards=[user_required], responses=error_responses(401, 403, 404))
async def delete_api_key(
    key_id: FromPath[uuid.UUID], principal: NamedDependency[Principal], services: NamedDependency[Services]
) -> None:
    """Revoke one of the caller's keys; it stops working at once on every server process."""
    await service.delete_api_key(services, principal.user_id, key_id)


router = Router(
    path="/api/v1",
    route_handlers=[register, login, refresh, logout, create_api_key, list_api_keys, delete_api_key],
    dependencies=DEPENDENCIES,
    tags=["auth"],
)
