"""REST endpoints of docs/api.md "Meetings (setup)" (the CSV export lives with Q&A).

Who may call what is decided by guards before a handler runs: `user_required` for creating and
listing, `meeting_role(...)` for one meeting (strangers 404, a role too small 403). Joining by
code takes credentials optionally. Bodies are untrusted and decoded strictly.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Protocol, runtime_checkable

from litestar import Request, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from server.auth import limits
from server.auth.guards import DEPENDENCIES, authenticate, user_required
from server.auth.identity import Principal
from server.meetings import service
from server.meetings.guards import meeting_role
from server.meetings.schemas import (
    Joined,
    JoinIn,
    Meeting,
    MeetingCreate,
    MeetingPage,
    MeetingPatch,
    Presenter,
    PresenterIn,
    PresenterList,
    SourceEvent,
    SourceIn,
)
from server.rest import Body, client_address, decode, error_responses
from server.services import Services

MODERATORS = meeting_role("owner", "presenter")
OWNER = meeting_role("owner")

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1..100.")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.", max_length=512)]


@runtime_checkable
class EventReader(Protocol):
    """Reads the calendar event a `source` names (404 for an unknown event or a connection not the caller's).

    The calendar feature provides it (wired in `server.app`), so meetings never import calendar.
    """

    async def __call__(self, user_id: uuid.UUID, source: SourceIn) -> SourceEvent: ...


@post("/meetings", status_code=201, guards=[user_required], responses=error_responses(400, 401, 403, 404, 422))
async def create_meeting(
    data: Body[MeetingCreate],
    principal: NamedDependency[Principal],
    services: NamedDependency[Services],
    calendar_events: NamedDependency[EventReader],
) -> Meeting:
    """Create a `scheduled` meeting; the caller is its owner.

    With `source` (an event of one of the caller's calendar connections) the server reads the event,
    takes title, starts_at and ends_at from it unless the body gives them, and the meeting follows it.
    """
    body = decode(data, MeetingCreate)
    event = None if body.source is None else await calendar_events(principal.user_id, body.source)
    return await service.create_meeting(services, principal.user_id, body, event)


@get("/meetings", guards=[user_required], responses=error_responses(400, 401, 403, 422))
async def list_meetings(
    principal: NamedDependency[Principal],
    services: NamedDependency[Services],
    limit: Limit = service.DEFAULT_PAGE,
    cursor: Cursor = None,
) -> MeetingPage:
    """Meetings the caller owns or presents, newest first. A cursor not from `next_cursor` is 400."""
    return await service.list_meetings(services, principal.user_id, limit, cursor)


@get("/meetings/{meeting_id:uuid}", guards=[MODERATORS], responses=error_responses(401, 403, 404))
async def get_meeting(meeting_id: FromPath[uuid.UUID], services: NamedDependency[Services]) -> Meeting:
    """One meeting (owner, presenter). Anyone without a role in it gets 404."""
    return await service.get_meeting(services, meeting_id)


@patch("/meetings/{meeting_id:uuid}", guards=[MODERATORS], responses=error_responses(400, 401, 403, 404, 409, 422))
async def update_meeting(
    meeting_id: FromPath[uuid.UUID], data: Body[MeetingPatch], services: NamedDependency[Services]
) -> Meeting:
    """Change any of title, description, starts_at, ends_at, settings, status; sends `meeting.updated`."""
    return await service.update_meeting(services, meeting_id, decode(data, MeetingPatch))


@delete("/meetings/{meeting_id:uuid}", status_code=204, guards=[OWNER], responses=error_responses(401, 403, 404))
async def delete_meeting(meeting_id: FromPath[uuid.UUID], services: NamedDependency[Services]) -> None:
    """Delete the meeting (owner only); everyone's sockets in its rooms are closed with 4403."""
    await service.delete_meeting(services, meeting_id)


@post(
    "/meetings/{meeting_id:uuid}/presenters",
    status_code=201,
    guards=[OWNER],
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
async def add_presenter(
    meeting_id: FromPath[uuid.UUID],
    data: Body[PresenterIn],
    services: NamedDependency[Services],
    principal: NamedDependency[Principal],
) -> Presenter:
    """Make an existing account a presenter, by email (owner only); 404 if there is no such account.

    Limited per caller (`ROOMCAST_PRESENTER_ADDS_PER_HOUR`), since the 404 tells whether an email
    has an account."""
    await limits.check_presenter_add(services, str(principal.user_id))
    return await service.add_presenter(services, meeting_id, decode(data, PresenterIn).email)


@get("/meetings/{meeting_id:uuid}/presenters", guards=[MODERATORS], responses=error_responses(401, 403, 404))
async def list_presenters(meeting_id: FromPath[uuid.UUID], services: NamedDependency[Services]) -> PresenterList:
    """The meeting's presenters with their emails (owner, presenter), so the owner can remove one."""
    return await service.list_presenters(services, meeting_id)


@delete(
    "/meetings/{meeting_id:uuid}/presenters/{user_id:uuid}",
    status_code=204,
    guards=[OWNER],
    responses=error_responses(401, 403, 404),
)
async def remove_presenter(
    meeting_id: FromPath[uuid.UUID], user_id: FromPath[uuid.UUID], services: NamedDependency[Services]
) -> None:
    """Remove a presenter (owner only); their sockets in the meeting's rooms are closed with 4403."""
    await service.remove_presenter(services, meeting_id, user_id)


@post("/meetings/join", status_code=200, responses=error_responses(400, 401, 403, 404, 409, 422, 429))
async def join_meeting(
    data: Body[JoinIn], request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> Joined:
    """Join by code. Without credentials: a guest (display_name required) with a token for this meeting only.

    With a user's credentials: the user becomes a participant and no token is returned. Unknown
    code 404; ended or cancelled meeting 409; limited per client address.
    """
    await limits.check_join(services, client_address(request))
    body = decode(data, JoinIn)
    principal = await authenticate(request)
    return await service.join(services, body, principal)


router = Router(
    path="/api/v1",
    route_handlers=[
        create_meeting,
        list_meetings,
        get_meeting,
        update_meeting,
        delete_meeting,
        add_presenter,
        list_presenters,
        remove_presenter,
        join_meeting,
    ],
    dependencies=DEPENDENCIES,
    tags=["meetings"],
)
