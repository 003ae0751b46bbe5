"""How roomcast's server side meets the realtime core: who a WebSocket `auth` token stands for.

`server.app` composes the gateway from this authenticator, the room policies and the features'
frame routers. Handlers get the caller as `principal_of(session)` (`server.meetings.policy`):
the `Principal` put into `Identity.context` here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from channels.seams import Authenticator, Identity
from server.auth.identity import resolve_token
from server.services import Services

log = logging.getLogger("roomcast.realtime")

UnreadCount = Callable[[Services, uuid.UUID], Awaitable[int]]


async def _none_unread(services: Services, user_id: uuid.UUID) -> int:
    return 0


def authenticator(services: Services, unread: UnreadCount = _none_unread) -> Authenticator:
    """Access tokens, guest tokens and API keys, exactly as REST accepts them; `unread` fills `welcome`."""

    async def authenticate(token: str) -> Identity | None:
        if not token or len(token) > 4096:
            return None
        principal = await resolve_token(services, token)
        if principal is None:
            return None
        return Identity(
            user_id=str(principal.user_id),
            display_name=principal.display_name,
            guest=principal.guest,
            unread_notifications=await unread(services, principal.user_id),
            context=principal,
        )

    return authenticate
