"""REST endpoints of docs/api.md "Account self-service".

Bodies are untrusted: each is checked strictly against its struct (`server.rest.decode`) and then
against the rules in `server.accounts.service` / `server.accounts.resets`, before anything is written.
Every `/me...` endpoint needs a user (access token or API key); guest tokens get 403.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from saq import Queue

from server.accounts import export as exporting
from server.accounts import resets, service
from server.accounts.schemas import (
    Export,
    LoginSession,
    PasswordChange,
    PasswordConfirm,
    ProfilePatch,
    ResetConfirm,
    ResetRequest,
)
from server.auth.guards import DEPENDENCIES, user_required
from server.auth.identity import Principal
from server.auth.schemas import Session, User
from server.auth.service import get_user
from server.rest import Body, client_address, decode, error_responses
from server.services import Services


def _user_agent(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("user-agent")


@get("/me", guards=[user_required], responses=error_responses(401, 403))
async def me(principal: NamedDependency[Principal], services: NamedDependency[Services]) -> User:
    """The calling user (access token or API key); guest tokens get 403."""
    return await get_user(services, principal.user_id)


@patch("/me", guards=[user_required], responses=error_responses(400, 401, 403, 409, 422, 429))
async def update_me(
    data: Body[ProfilePatch],
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    services: NamedDependency[Services],
) -> User:
    """Change the display name and/or email; a new email needs `current_password` (401 if wrong), 409 if taken."""
    body = decode(data, ProfilePatch)
    return await service.update_profile(services, principal, body, client_address(request))


@post("/me/password", status_code=200, guards=[user_required], responses=error_responses(400, 401, 403, 422, 429))
async def change_password(
    data: Body[PasswordChange],
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    services: NamedDependency[Services],
) -> Session:
    """Set a new password; every other login is revoked and its sockets close with 4401."""
    body = decode(data, PasswordChange)
    return await service.change_password(services, principal, body, client_address(request), _user_agent(request))


@get("/me/sessions", guards=[user_required], responses=error_responses(401, 403))
async def list_sessions(
    principal: NamedDependency[Principal], services: NamedDependency[Services]
) -> list[LoginSession]:
    """The caller's logins (refresh-token families), most recently used first; `current` marks this one."""
    return await service.list_sessions(services, principal)


@delete(
    "/me/sessions/{session_id:uuid}", status_code=204, guards=[user_required], responses=error_responses(401, 403, 404)
)
async def revoke_session(
    session_id: FromPath[uuid.UUID], principal: NamedDependency[Principal], services: NamedDependency[Services]
) -> None:
    """End one login: its tokens stop working and its sockets close with 4401."""
    await service.revoke_session(services, principal, session_id)


@get("/me/export", guards=[user_required], responses=error_responses(401, 403))
async def export_me(principal: NamedDependency[Principal], services: NamedDependency[Services]) -> Response[Export]:
    """Everything stored about the caller, as one JSON document (and nothing about anyone else)."""
    return Response(
        await exporting.export(services, principal),
        headers={"Content-Disposition": 'attachment; filename="roomcast-export.json"', "Cache-Control": "no-store"},
    )


@delete(
    "/me",
    status_code=204,
    guards=[user_required],
    responses=error_responses(400, 401, 403, 422, 429),
    # DELETE with a body: Litestar must be told the body is expected
)
async def delete_me(
    data: Body[PasswordConfirm],
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    services: NamedDependency[Services],
) -> None:
    """Delete the account after checking `password`: owned meetings go, questions stay anonymous, votes count."""
    body = decode(data, PasswordConfirm)
    await service.delete_account(services, principal, body.password, client_address(request))


@post("/auth/password-reset", status_code=202, responses=error_responses(400, 422, 429))
async def request_password_reset(
    data: Body[ResetRequest],
    request: Request[Any, Any, Any],
    services: NamedDependency[Services],
    jobs: NamedDependency[Queue],
) -> None:
    """Mail a one-time reset link if the account exists (202 either way); 5 per email, 50 per address an hour."""
    body = decode(data, ResetRequest)
    await resets.request_reset(services, jobs, body.email, client_address(request))


@post("/auth/password-reset/confirm", status_code=200, responses=error_responses(400, 422))
async def confirm_password_reset(
    data: Body[ResetConfirm], request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> Session:
    """Spend a reset token and set the new password; every other login is revoked. Bad token: 400."""
    body = decode(data, ResetConfirm)
    return await resets.confirm_reset(services, body.token, body.new_password, _user_agent(request))


router = Router(
    path="/api/v1",
    route_handlers=[
        me,
        update_me,
        change_password,
        list_sessions,
        revoke_session,
        export_me,
        delete_me,
        request_password_reset,
        confirm_password_reset,
    ],
    dependencies=DEPENDENCIES,
    tags=["account"],
)
