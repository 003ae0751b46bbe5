"""The one place that decides who a caller is, from any bearer credential.

Access tokens, guest tokens and API keys all arrive as `Authorization: Bearer <token>` (and as
the `token` of the WebSocket `auth` frame). A token of a deleted user resolves to nobody.
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

from server.auth.tokens import decode_token, secret_hash
from server.services import Services

API_KEY_PREFIX = "rk_"

CredentialKind = Literal["access", "guest", "api_key"]


class Principal(msgspec.Struct, frozen=True):
    """An authenticated caller."""

    user_id: uuid.UUID
    display_name: str
    credential: CredentialKind
    guest_meeting_id: uuid.UUID | None = None
    """Set for guests: the only meeting they may act in."""
    api_key_id: uuid.UUID | None = None

    @property
    def guest(self) -> bool:
        return self.guest_meeting_id is not None


async def resolve_token(services: Services, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None if it stands for nobody (any more)."""
    if token.startswith(API_KEY_PREFIX):
        return await _api_key(services, token)
    claims = decode_token(services.settings, token)
    if claims is None:
        return None
    async with services.db.pool.acquire() as connection:
        row = await connection.fetchrow("SELECT display_name, guest_meeting_id FROM users WHERE id = $1", claims.sub)
    if row is None:
        return None
    if claims.typ == "guest":
        if row["guest_meeting_id"] is None or row["guest_meeting_id"] != claims.mid:
            return None
        return Principal(claims.sub, row["display_name"], "guest", guest_meeting_id=claims.mid)
    if row["guest_meeting_id"] is not None:
        return None
    return Principal(claims.sub, row["display_name"], "access")


async def _api_key(services: Services, token: str) -> Principal | None:
    async with services.db.pool.acquire() as connection:
        row = await connection.fetchrow(
            'SELECT k.id, k."user" AS user_id, u.display_name FROM api_keys k JOIN users u ON u.id = k."user" '
            "WHERE k.key_hash = $1",
            secret_hash(token),
        )
    if row is None:
        return None
    return Principal(row["user_id"], row["display_name"], "api_key", api_key_id=row["id"])
