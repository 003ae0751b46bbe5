"""Signed tokens: short-lived access tokens and guest tokens (HS256 JWTs), opaque secrets and their hashes.

The algorithm is pinned on decode (a token with `alg: none` or any other algorithm is refused),
`exp`, `iat` and `sub` are required, and a `typ` claim keeps an access token from passing as a
guest token or the other way round.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any, Literal

import jwt
import msgspec

from server.settings import Settings

ALGORITHM = "HS256"
TokenType = Literal["access", "guest"]


class Claims(msgspec.Struct, frozen=True):
    sub: uuid.UUID
    typ: TokenType
    exp: int
    iat: int
    mid: uuid.UUID | None = None
    """For guest tokens, the one meeting the token is valid for."""
    fam: uuid.UUID | None = None
    """For access tokens, the login (refresh-token family) they belong to: revoking it revokes them."""


def issue_access_token(settings: Settings, user_id: uuid.UUID, family_id: uuid.UUID | None = None) -> str:
    """An access token; with `family_id` it dies with its login (logout, refresh-token reuse)."""
    claims = {"sub": str(user_id), "typ": "access"}
    if family_id is not None:
        claims["fam"] = str(family_id)
    return _encode(settings, claims, settings.access_token_ttl_s)


def issue_guest_token(settings: Settings, user_id: uuid.UUID, meeting_id: uuid.UUID) -> str:
    return _encode(settings, {"sub": str(user_id), "typ": "guest", "mid": str(meeting_id)}, settings.guest_token_ttl_s)


def _encode(settings: Settings, claims: dict[str, Any], ttl_s: int) -> str:
    now = int(time.time())
    return jwt.encode(
        {**claims, "iat": now, "exp": now + ttl_s, "jti": secrets.token_hex(8)}, settings.secret_key, ALGORITHM
    )


def decode_token(settings: Settings, token: str) -> Claims | None:
    """The token's claims, or None for anything forged, expired, malformed or of another algorithm."""
    try:
        payload = jwt.decode(
            token, settings.secret_key, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub", "typ"]}
        )
        claims = msgspec.convert(payload, Claims, strict=False)
    except (jwt.PyJWTError, msgspec.ValidationError, ValueError):
        return None
    if claims.typ == "guest" and claims.mid is None:
        return None
    return claims


def new_secret(prefix: str = "") -> str:
    """An opaque credential with 32 random bytes (refresh tokens, API keys with prefix `rk_`)."""
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """What is stored for an opaque credential: its SHA-256 (the secret has 256 bits of entropy, so no salt)."""
    return hashlib.sha256(secret.encode()).hexdigest()
