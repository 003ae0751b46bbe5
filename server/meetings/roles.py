"""A principal's role in a meeting: the single question every meeting permission asks."""

from __future__ import annotations

import uuid
from typing import Literal

from server.auth.identity import Principal
from server.services import Services

Role = Literal["owner", "presenter", "participant"]
MODERATORS: frozenset[Role] = frozenset({"owner", "presenter"})


async def role_in(services: Services, meeting_id: uuid.UUID, principal: Principal) -> Role | None:
    """`owner`, `presenter`, `participant` (guests of this meeting too), or None for a stranger."""
    if principal.guest:
        if principal.guest_meeting_id != meeting_id:
            return None
        async with services.db.pool.acquire() as connection:
            exists = await connection.fetchval("SELECT 1 FROM meetings WHERE id = $1", meeting_id)
        return "participant" if exists else None
    async with services.db.pool.acquire() as connection:
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
