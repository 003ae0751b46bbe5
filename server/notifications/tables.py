"""Stored notifications (schema in migrations/roomcast_0020_notifications.py)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from server.auth.tables import User


class Notification(Table, tablename="notifications"):
    id = UUID(primary_key=True, default=UUID4())
    user = ForeignKey(references=User, null=False)
    kind = Varchar(length=64)
    title = Text()
    body = Text(default="")
    data = JSONB(default="{}")
    dedupe_key = Varchar(length=200, null=True, default=None)
    """Set for notifications that must be sent once (reminders); unique per user."""
    created_at = Timestamptz(default=TimestamptzNow())
    read_at = Timestamptz(null=True, default=None)
