"""A principal's role in a meeting: the single question every meeting permission asks."""

from __future__ import annotations

import uuid
from typing import Literal, cast, get_args

from server import cache
from server.auth.identity import Principal
from server.services import Services

Role = Literal["owner", "presenter", "participant"]
ROLES: frozenset[str] = frozenset(get_args(Role))
MODERATORS: frozenset[Role] = frozenset({"owner", "presenter"})


async def role_in(services: Services, meeting_id: uuid.UUID, principal: Principal) -> Role | None:
    """`owner`, `presenter`, `participant` (guests of this meeting too), or None for a stranger.

    Hand-written SQL, both statements: this is the authorisation of every join and every frame
    whose cached role is gone (after an invalidation, a whole meeting's worth at once), and
    through Piccolo it costs 160-210 µs more per lookup (measured; the member's role needs a
    second statement there, since Piccolo's joins cannot add `"user" = $2` to the ON clause).
    """
    if principal.guest:
        if principal.guest_meeting_id != meeting_id:
            return None
        async with services.db.pool.acquire() as connection:  # hand-written: see above
            exists = await connection.fetchval("SELECT 1 FROM meetings WHERE id = $1", meeting_id)
        return "participant" if exists else None
    async with services.db.pool.acquire() as connection:  # hand-written: see above
        row = await connection.fetchrow(
            """SELECT CASE WHEN m.owner = $2 THEN 'owner' ELSE mm.role END AS role
               FROM meetings m LEFT JOIN meeting_members mm ON mm.meeting = m.id AND mm."user" = $2
               WHERE m.id = $1""",
            meeting_id,
            principal.user_id,
        )
    if row is None or row["role"] is None:
        return None
    role: Role = row["role"]
    return role


async def cached_role_in(services: Services, meeting_id: uuid.UUID, principal: Principal) -> Role | None:
    """`role_in`, kept in Redis (`server.cache`): the one role cache, for joins, frames and REST guards alike.

    The meeting's cache scope is invalidated when the meeting is deleted or a presenter is added or
    removed; a stranger's None is not kept, so becoming a participant needs no invalidation.
    """
    name = f"ws-role:{meeting_id}:{principal.user_id}:{principal.guest_meeting_id}"
    cached, versions = await cache.read(services, name, [cache.meeting_scope(meeting_id)])
    if cached is not None and cached.decode() in ROLES:
        return cast(Role, cached.decode())
    role = await role_in(services, meeting_id, principal)
    if role is not None:
        await cache.store(services, name, role.encode(), versions)
    return role
