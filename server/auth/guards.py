"""Who may call a REST endpoint: the caller comes from `resolve_token`, permissions from Litestar guards.

`authenticate` reads `Authorization: Bearer <token>` and asks `server.auth.identity.resolve_token`
(the one place that decides who a caller is); the answer is kept in the request's state so the
guards and the `principal` dependency share one lookup per request.

Guards, in the order a handler lists them:
- `user_required`: a user (access token or API key). No credentials or a bad one: 401. A guest
  token: 403 -- REST gives guests nothing but `POST /meetings/join` (docs/api.md).
- meeting roles are the meetings feature's guard: `server.meetings.guards.meeting_role`.
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler

from server.auth.identity import Principal, resolve_token
from server.errors import ApiError, forbidden
from server.services import Services

_PRINCIPAL = "roomcast_principal"
_NOBODY = object()

AnyConnection = ASGIConnection[Any, Any, Any, Any]


def services_of(connection: AnyConnection) -> Services:
    return cast(Services, connection.app.state["services"])


def unauthenticated(message: str = "missing or invalid credentials") -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def bearer_token(connection: AnyConnection) -> str | None:
    """The bearer token, None without an Authorization header, 401 for any other scheme or an empty token."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 4096:
        raise unauthenticated("expected Authorization: Bearer <token>")
    return token


async def authenticate(connection: AnyConnection) -> Principal | None:
    """The caller, or None without credentials; 401 for credentials that stand for nobody. Cached per request."""
    cached = connection.state.get(_PRINCIPAL, _NOBODY)
    if cached is not _NOBODY:
        return cast(Principal | None, cached)
    token = bearer_token(connection)
    principal = None if token is None else await resolve_token(services_of(connection), token)
    if token is not None and principal is None:
        raise unauthenticated()
    connection.state[_PRINCIPAL] = principal
    return principal


async def user_required(connection: AnyConnection, _: BaseRouteHandler) -> None:
    """Guard: a user (not a guest) must be calling."""
    principal = await authenticate(connection)
    if principal is None:
        raise unauthenticated()
    if principal.guest:
        raise forbidden("guest tokens are valid only in their meeting, not for this endpoint")


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The `principal` dependency: the authenticated caller (handlers behind a guard always have one)."""
    principal = await authenticate(request)
    if principal is None:
        raise unauthenticated()
    return principal


DEPENDENCIES = {
    "principal": Provide(provide_principal),
}
"""Register on a router to offer `principal: NamedDependency[Principal]`."""
