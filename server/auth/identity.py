"""The one place that decides who a caller is, from any bearer credential.

Access tokens, guest tokens and API keys all arrive as `Authorization: Bearer <token>` (and as
the `token` of the WebSocket `auth` frame). A token of a deleted user resolves to nobody.

Nothing here is cached: every call reads PostgreSQL, so a deleted API key, a deleted user or a
revoked login (logout, refresh-token reuse) stops working at once on every server process. (The
WebSocket `auth` keeps this answer in Redis, `server.realtime`, invalidated by those writes.)
The only write, an API key's `last_used_at`, happens at most once a minute per key, gated by a
Redis `SET NX EX` shared by every process.

The two lookups below are kept in plain SQL on the asyncpg pool: they run for every REST request
and every WebSocket `auth`, and through Piccolo each cost 130-350 µs more client CPU per call
(measured: `users` by id 157 -> 290 µs, the API key join 157 -> 506 µs, the revoked-login check
as a second Piccolo query 157 -> 686 µs, 3,000 calls each, interleaved, on one machine).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Literal

import msgspec

from channels.seams import SessionView
from server.auth.tables import ApiKey
from server.auth.tokens import decode_token, secret_hash
from server.services import Services

log = logging.getLogger("roomcast.auth")

API_KEY_PREFIX = "rk_"
LAST_USED_RESOLUTION_S = 60
"""An API key's `last_used_at` is written at most this often."""

CredentialKind = Literal["access", "guest", "api_key"]


class Principal(msgspec.Struct, frozen=True):
    """An authenticated caller."""

    user_id: uuid.UUID
    display_name: str
    credential: CredentialKind
    guest_meeting_id: uuid.UUID | None = None
    """Set for guests: the only meeting they may act in."""
    api_key_id: uuid.UUID | None = None
    family_id: uuid.UUID | None = None
    """For access tokens, the login (refresh-token family) they belong to: `current` in `GET /me/sessions`."""

    @property
    def guest(self) -> bool:
        return self.guest_meeting_id is not None


def principal_of(session: SessionView) -> Principal:
    """The `Principal` the WebSocket authenticator (`server.realtime`) put in the session's identity."""
    principal = session.identity.context
    if not isinstance(principal, Principal):
        raise TypeError("the session was not authenticated by server.realtime.authenticator")
    return principal


async def resolve_token(services: Services, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None if it stands for nobody (any more)."""
    if token.startswith(API_KEY_PREFIX):
        return await _api_key(services, token)
    claims = decode_token(services.settings, token)
    if claims is None:
        return None
    async with services.db.pool.acquire() as connection:
        # a hot path, in plain SQL (module docstring): one statement for the user and the login's revocation
        row = await connection.fetchrow(
            "SELECT display_name, guest_meeting_id, "
            "EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = $2 AND revoked_at IS NOT NULL) AS revoked "
            "FROM users WHERE id = $1",
            claims.sub,
            claims.fam,
        )
    if row is None or row["revoked"]:
        return None
    if claims.typ == "guest":
        if row["guest_meeting_id"] is None or row["guest_meeting_id"] != claims.mid:
            return None
        return Principal(claims.sub, row["display_name"], "guest", guest_meeting_id=claims.mid)
    if row["guest_meeting_id"] is not None:
        return None
    return Principal(claims.sub, row["display_name"], "access", family_id=claims.fam)


async def _api_key(services: Services, token: str) -> Principal | None:
    async with services.db.pool.acquire() as connection:
        # a hot path, in plain SQL (module docstring): the key and its user's name in one join
        row = await connection.fetchrow(
            'SELECT k.id, k."user" AS user_id, u.display_name FROM api_keys k JOIN users u ON u.id = k."user" '
            "WHERE k.key_hash = $1",
            secret_hash(token),
        )
    if row is None:
        return None
    await _touch_api_key(services, row["id"])
    return Principal(row["user_id"], row["display_name"], "api_key", api_key_id=row["id"])


async def _touch_api_key(services: Services, key_id: uuid.UUID) -> None:
    """Record that a key was used, at most once per `LAST_USED_RESOLUTION_S`; never fails the request."""
    try:
        first = await services.redis.set(
            services.key("apikey", "used", str(key_id)), b"1", nx=True, ex=LAST_USED_RESOLUTION_S
        )
        if first:
            await ApiKey.update({ApiKey.last_used_at: datetime.now(UTC)}).where(ApiKey.id == key_id)
    except Exception:
        log.warning("auth.api_key_touch_failed", exc_info=True, extra={"api_key_id": str(key_id)})
