"""Accounts and credentials. Secrets (passwords, refresh tokens, API keys) are stored only as hashes."""

from __future__ import annotations

from piccolo.columns import UUID, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table


class User(Table, tablename="users"):
    """An account, or a guest who joined one meeting by code (no email, no password).

    Guests are users so that questions, votes and mutes name one kind of author.
    """

    id = UUID(primary_key=True, default=UUID4())
    email = Varchar(length=320, null=True, default=None, unique=True)
    """Stored lower-cased; the unique index makes case-insensitive uniqueness a database fact."""
    password_hash = Text(null=True, default=None)
    display_name = Varchar(length=80)
    guest_meeting_id = UUID(null=True, default=None)
    """For guests, the one meeting their token is good for (the row goes with the meeting)."""
    created_at = Timestamptz(default=TimestamptzNow())


class RefreshToken(Table, tablename="refresh_tokens"):
    """One rotating refresh token; every token of one login shares a `family_id`."""

    id = UUID(primary_key=True, default=UUID4())
    user = ForeignKey(references=User, null=False)
    family_id = UUID()
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    spent_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    user_agent = Varchar(length=300, null=True, default=None)
    """The browser or client that started the login (its `User-Agent`), shown in `GET /me/sessions`."""


class ApiKey(Table, tablename="api_keys"):
    id = UUID(primary_key=True, default=UUID4())
    user = ForeignKey(references=User, null=False)
    name = Varchar(length=100)
    key_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
