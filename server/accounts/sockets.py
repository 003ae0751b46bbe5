"""Ending the open sockets of logins that account self-service just revoked."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from channels.protocol import CloseCode
from server import cache
from server.services import Services

log = logging.getLogger("roomcast.accounts")


async def end_sockets(
    services: Services,
    *,
    user_id: uuid.UUID,
    family_ids: Iterable[uuid.UUID] | None = None,
    except_family: uuid.UUID | None = None,
) -> None:
    """After a commit that revoked logins of `user_id`: forget cached identities, close their sockets (4401).

    `family_ids=None` means every login of the user. Never raises: the revocation is stored, and
    every token of a revoked login is refused from now on whatever happens to its socket.
    This build closes every socket of the user, on every process, through the broker's control
    channel (the sockets of `except_family` too: a client reconnects with its still valid token).
    """
    await cache.invalidate(services, cache.user_scope(user_id))
    try:
        await services.broker.disconnect_user(str(user_id), f"user:{user_id}", CloseCode.UNAUTHENTICATED)
    except Exception:
        log.warning("accounts.sockets_not_ended", exc_info=True, extra={"user_id": str(user_id)})
