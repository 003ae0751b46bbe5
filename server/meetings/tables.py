"""Meetings and the roles of the people in them (guests are users too: see `server.auth.tables`)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from server.auth.tables import User


class Meeting(Table, tablename="meetings"):
    id = UUID(primary_key=True, default=UUID4())
    owner = ForeignKey(references=User, null=False)
    title = Varchar(length=200)
    description = Text(default="")
    starts_at = Timestamptz(null=True, default=None)
    ends_at = Timestamptz(null=True, default=None)
    status = Varchar(length=16, default="scheduled")
    join_code = Varchar(length=8, unique=True)
    settings = JSONB(default="{}")
    source = JSONB(null=True, default=None)
    """`{provider, calendar_event_id, connection_id}` for meetings created from a calendar event."""
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class MeetingMember(Table, tablename="meeting_members"):
    """A user's role in a meeting other than owner: `presenter` or `participant`."""

    id = UUID(primary_key=True, default=UUID4())
    meeting = ForeignKey(references=Meeting, null=False)
    user = ForeignKey(references=User, null=False)
    role = Varchar(length=16)
    created_at = Timestamptz(default=TimestamptzNow())
