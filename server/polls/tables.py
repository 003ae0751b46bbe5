"""Polls and their answers. Schema lives in migrations/roomcast_0060_polls.py (partial unique index: one
open poll per meeting; one answer per (poll, user)). Reactions are never stored."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, Array, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from server.auth.tables import User
from server.meetings.tables import Meeting


class Poll(Table, tablename="polls"):
    id = UUID(primary_key=True, default=UUID4())
    meeting = ForeignKey(references=Meeting, null=False)
    kind = Varchar(length=16)
    title = Varchar(length=200)
    options = JSONB(default="[]")
    """`[{id, text}]` for choice polls, empty for the other kinds."""
    multiple = Boolean(default=False)
    scale_max = Integer(default=5)
    anonymous = Boolean(default=True)
    show_results = Varchar(length=16, default="live")
    status = Varchar(length=16, default="draft")
    position = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    opened_at = Timestamptz(null=True, default=None)
    """Set at every opening and never cleared: a poll with one was opened at least once (its setup is frozen)."""
    closed_at = Timestamptz(null=True, default=None)


class PollResponse(Table, tablename="poll_responses"):
    """One user's answer to one poll (unique together); `user` is NULL once the account is deleted."""

    id = UUID(primary_key=True, default=UUID4())
    poll = ForeignKey(references=Poll, null=False)
    user = ForeignKey(references=User, null=True)
    option_ids = Array(base_column=Text())
    value = Integer(null=True, default=None)
    words = Array(base_column=Text())
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
