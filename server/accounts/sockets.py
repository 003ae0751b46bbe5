"""After account self-service revoked logins: forget what the reconnect cache knows, then end their sockets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from server import cache
from server.auth.revocation import end_login_sockets
from server.services import Services


async def end_sockets(services: Services, *, user_id: uuid.UUID, family_ids: Iterable[uuid.UUID] | None) -> None:
    """Call after the commit that revoked logins of `user_id`; never raises.

    The user's cached socket identities are invalidated (a reconnect asks PostgreSQL again), and
    the sockets opened with those logins close with 4401 on every process
    (`server.auth.revocation`); `family_ids=None` (a deleted account) is every socket of the user.
    Sockets of the caller's own login and of API keys stay open after a password change.
    """
    await cache.invalidate(services, cache.user_scope(user_id))
    await end_login_sockets(services, user_id=user_id, family_ids=family_ids)
