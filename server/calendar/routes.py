"""REST endpoints of docs/calendar.md (calendar sync) under `/api/v1/calendar`.

Connect, list, delete and sync are for signed-in users (`user_required`); a connection that is not
the caller's is 404. The callback carries no bearer token: the signed, single-use `state` names
the user. Webhooks are called by the providers and checked by `server.calendar.webhooks`.
A provider without a client id is off: its connect, callback and webhook answer 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect

from server.auth.guards import DEPENDENCIES, user_required
from server.auth.identity import Principal
from server.calendar import webhooks
from server.calendar.schemas import AuthorizationUrl, CalendarEventPage, Connection
from server.calendar.service import PROVIDERS, Calendar
from server.errors import bad_request, not_found
from server.rest import error_responses

MAX_QUERY_VALUE = 4096
Limit = Annotated[int, QueryParameter(ge=1, le=50, description="How many events, 1..50.")]


def _known(provider: str) -> str:
    if provider not in PROVIDERS:
        raise not_found(f"unknown calendar provider {provider[:40]!r}")
    return provider


@get("/calendar/{provider:str}/connect", guards=[user_required], responses=error_responses(401, 403, 404))
async def connect(
    provider: FromPath[str], principal: NamedDependency[Principal], calendar: NamedDependency[Calendar]
) -> AuthorizationUrl:
    """Start connecting `google` or `outlook`: send the browser to `authorization_url`."""
    url = await calendar.authorization_url(principal.user_id, _known(provider))
    return AuthorizationUrl(authorization_url=url)


@get("/calendar/{provider:str}/callback", responses=error_responses(400, 404))
async def callback(
    provider: FromPath[str], request: Request[Any, Any, Any], calendar: NamedDependency[Calendar]
) -> Redirect:
    """The provider's redirect back (`code`, `state`): stores the connection, then redirects to `/calendar`.

    A forged, expired or replayed state, or a refused authorization: 400 and nothing stored.
    """
    _known(provider)
    params: dict[str, str] = {}
    for key, values in request.query_params.dict().items():
        if values:
            if len(values[0]) > MAX_QUERY_VALUE:
                raise bad_request(f"query parameter {key[:40]!r} is too long")
            params[key] = values[0]
    await calendar.complete(provider, params)
    return Redirect(path=f"/calendar?connected={provider}", status_code=303)


@get("/calendar/connections", guards=[user_required], responses=error_responses(401, 403))
async def list_connections(
    principal: NamedDependency[Principal], calendar: NamedDependency[Calendar]
) -> list[Connection]:
    """The caller's connections, oldest first."""
    return await calendar.connections(principal.user_id)


@delete(
    "/calendar/connections/{connection_id:uuid}",
    status_code=204,
    guards=[user_required],
    responses=error_responses(401, 403, 404),
)
async def delete_connection(
    connection_id: FromPath[uuid.UUID], principal: NamedDependency[Principal], calendar: NamedDependency[Calendar]
) -> None:
    """Disconnect: stops the provider's channel or subscription and deletes the tokens and held events.

    Meetings created from its events stay, and no longer follow them.
    """
    await calendar.disconnect(principal.user_id, connection_id)


@post(
    "/calendar/connections/{connection_id:uuid}/sync",
    status_code=202,
    guards=[user_required],
    responses=error_responses(401, 403, 404, 409),
)
async def sync_connection(
    connection_id: FromPath[uuid.UUID], principal: NamedDependency[Principal], calendar: NamedDependency[Calendar]
) -> Connection:
    """Enqueue a sync now (coalesced with any already waiting). 409 if the account revoked access."""
    return await calendar.manual_sync(principal.user_id, connection_id)


@get(
    "/calendar/connections/{connection_id:uuid}/events",
    guards=[user_required],
    responses=error_responses(400, 401, 403, 404, 422),
)
async def upcoming_events(
    connection_id: FromPath[uuid.UUID],
    principal: NamedDependency[Principal],
    calendar: NamedDependency[Calendar],
    limit: Limit = 10,
) -> CalendarEventPage:
    """The connection's next events as the last sync saw them, soonest first (to create meetings from)."""
    return await calendar.upcoming(principal.user_id, connection_id, limit)


@post("/calendar/webhooks/google", status_code=200, responses=error_responses(401, 404))
async def google_webhook(request: Request[Any, Any, Any], calendar: NamedDependency[Calendar]) -> None:
    """Google Calendar push notifications (headers only). Untrusted: a checked one only enqueues a sync."""
    await webhooks.google(calendar, {k.lower(): v for k, v in request.headers.items()})


@post("/calendar/webhooks/outlook", status_code=202, responses=error_responses(400, 401, 404))
async def outlook_webhook(request: Request[Any, Any, Any], calendar: NamedDependency[Calendar]) -> Response[Any]:
    """Microsoft Graph notifications; `?validationToken=` (subscription handshake) is echoed as text/plain."""
    calendar.provider("outlook")
    token = request.query_params.get("validationToken")
    if token is not None:
        if len(token) > MAX_QUERY_VALUE:
            raise bad_request("validationToken is too long")
        return Response(token, media_type=MediaType.TEXT, status_code=200)
    try:
        body = msgspec.json.decode(await request.body())
    except Exception:  # malformed, or nested past msgspec's depth limit
        raise bad_request("the request body is not valid JSON") from None
    await webhooks.outlook(calendar, body)
    return Response(None, status_code=202)


router = Router(
    path="/api/v1",
    route_handlers=[
        connect,
        callback,
        list_connections,
        delete_connection,
        sync_connection,
        upcoming_events,
        google_webhook,
        outlook_webhook,
    ],
    dependencies=DEPENDENCIES,
    tags=["calendar"],
)
