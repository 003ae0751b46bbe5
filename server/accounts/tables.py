"""Password-reset tokens. Schema lives in migrations/roomcast_0040_accounts.py."""

from __future__ import annotations

from piccolo.columns import UUID, ForeignKey, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from server.auth.tables import User


class PasswordResetToken(Table, tablename="password_reset_tokens"):
    """One emailed (or operator-made) reset link: only the SHA-256 of its token is kept; spent once."""

    id = UUID(primary_key=True, default=UUID4())
    user = ForeignKey(references=User, null=False)
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
