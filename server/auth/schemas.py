"""Request and response bodies of the auth endpoints (docs/api.md, "Auth"), exactly as specified.

Request structs forbid unknown fields; the rules msgspec cannot express (email shape, password
length, trimmed display names) are checked in `server.auth.service` with a 422 naming the field.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from server.rest import Email, one_line

Password = Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
DisplayName = Annotated[str, one_line(80)]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    password: Password
    """8..1024 characters."""
    display_name: DisplayName
    """1..80 characters after trimming."""


class LoginIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: str
    password: str


class RefreshIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    refresh_token: str


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, one_line(100)]
    """1..100 characters after trimming."""


class User(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    email: str | None
    """None only for guests, who never see this shape over REST."""
    display_name: str
    created_at: datetime


class Session(msgspec.Struct, kw_only=True):
    user: User
    access_token: str
    refresh_token: str
    """Opaque; rotated by every `POST /auth/refresh`."""
    token_type: Literal["bearer"]
    expires_in: int
    """Seconds until `access_token` expires."""


class ApiKeyCreated(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    key: str
    """Shown only in this answer; the server keeps only its hash."""
    created_at: datetime


class ApiKey(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    """Updated at most once a minute per key."""
