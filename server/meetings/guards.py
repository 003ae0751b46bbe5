"""The meeting-role guard of REST endpoints under `/meetings/{meeting_id}`.

`meeting_role("owner", "presenter")`: the caller's role in the meeting named by the path's
`meeting_id`, from the same versioned role cache the WebSocket grant uses
(`server.meetings.roles.cached_role_in`). No role at all: 404, so strangers cannot learn that a
meeting exists; a role that is not enough (a participant on a moderator endpoint): 403.
"""

from __future__ import annotations

import uuid
from typing import cast

from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from server.auth.guards import AnyConnection, authenticate, services_of, unauthenticated
from server.errors import forbidden, not_found
from server.meetings.roles import Role, cached_role_in


def meeting_role(*allowed: Role) -> Guard:
    """Guard factory: the caller's role in path parameter `meeting_id` must be one of `allowed`."""

    async def guard(connection: AnyConnection, _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if principal is None:
            raise unauthenticated()
        meeting_id = cast(uuid.UUID, connection.path_params["meeting_id"])  # the route declares `{meeting_id:uuid}`
        role = await cached_role_in(services_of(connection), meeting_id, principal)
        if role is None:
            raise not_found("no such meeting")
        if role not in allowed:
            raise forbidden(f"only the meeting's {' or '.join(allowed)} may do this")

    return guard
