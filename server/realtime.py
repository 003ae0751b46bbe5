"""How roomcast's server side meets the realtime core: who a WebSocket `auth` token stands for.

`server.app` composes the gateway from this authenticator, the room policies and the features'
frame routers. Handlers get the caller as `principal_of(session)` (`server.meetings.policy`):
the `Principal` put into `Identity.context` here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import msgspec

from channels.seams import Authenticator, Identity
from server import cache
from server.auth.identity import API_KEY_PREFIX, Principal, resolve_token
from server.auth.revocation import credential_of
from server.auth.tokens import decode_token
from server.services import Services

log = logging.getLogger("roomcast.realtime")

UnreadCount = Callable[[Services, uuid.UUID], Awaitable[int]]


async def _none_unread(services: Services, user_id: uuid.UUID) -> int:
    return 0


class _Known(msgspec.Struct, array_like=True):
    """What a reconnect needs to know about a token: cached in Redis (`server.cache`)."""

    principal: Principal
    unread: int


_decoder = msgspec.msgpack.Decoder(_Known)
_encode_known = msgspec.msgpack.Encoder().encode


def _decode(cached: bytes | None) -> _Known | None:
    """A cache hit, or None (a miss, or an entry an older version of roomcast wrote)."""
    if cached is None:
        return None
    try:
        return _decoder.decode(cached)
    except msgspec.DecodeError:
        return None


def authenticator(services: Services, unread: UnreadCount = _none_unread) -> Authenticator:
    """Access tokens, guest tokens and API keys, exactly as REST accepts them; `unread` fills `welcome`.

    For access and guest tokens the answer (who, and the unread count) is kept in Redis under
    the user's cache scope (and a guest's meeting's), which logout, refresh-token reuse, a new
    or read notification and a deleted meeting invalidate: a reconnect storm asks PostgreSQL
    nothing. The token's signature and expiry are still checked every time. API keys are
    looked up every time (an integration does not reconnect in storms).

    The identity names the credential the socket is opened with and when it expires
    (`server.auth.revocation`), so revoking or outliving it closes the socket with 4401.
    """

    async def lookup(token: str) -> _Known | None:
        principal = await resolve_token(services, token)
        if principal is None:
            return None
        return _Known(principal, await unread(services, principal.user_id))

    async def authenticate(token: str) -> Identity | None:
        if not token or len(token) > 4096:
            return None
        claims = None if token.startswith(API_KEY_PREFIX) else decode_token(services.settings, token)
        if claims is None:
            known = await lookup(token)
        else:
            name = f"ws-identity:{claims.typ}:{claims.sub}:{claims.fam}:{claims.mid}"
            scopes = [cache.user_scope(claims.sub)]
            if claims.mid is not None:
                scopes.append(cache.meeting_scope(claims.mid))
            cached, versions = await cache.read(services, name, scopes)
            known = _decode(cached)
            if known is None:
                known = await lookup(token)
                if known is not None:
                    await cache.store(services, name, _encode_known(known), versions)
        if known is None:
            return None
        principal = known.principal
        return Identity(
            user_id=str(principal.user_id),
            display_name=principal.display_name,
            guest=principal.guest,
            unread_notifications=known.unread,
            context=principal,
            credential=credential_of(principal, claims),
            expires_at=None if claims is None else float(claims.exp),
        )

    return authenticate
