"""Questions, votes and mutes. Schema lives in migrations/roomcast_0010_questions.py (partial unique
indexes: one pinned question per meeting, one question per client_id)."""

from __future__ import annotations

from piccolo.columns import UUID, Array, Boolean, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table

from server.auth.tables import User
from server.meetings.tables import Meeting


class Question(Table, tablename="questions"):
    id = UUID(primary_key=True, default=UUID4())
    meeting = ForeignKey(references=Meeting, null=False)
    author = ForeignKey(references=User, null=True, on_delete=OnDelete.set_null)
    """NULL once the author deleted their account: the question stays, as if anonymous."""
    text = Text()
    status = Varchar(length=16)
    pinned = Boolean(default=False)
    votes = Integer(default=0)
    anonymous = Boolean(default=False)
    answer = Text(null=True, default=None)
    flagged = Boolean(default=False)
    flagged_words = Array(base_column=Text())
    dismiss_reason = Varchar(length=16, null=True, default=None)
    merged_into = UUID(null=True, default=None)
    client_id = Varchar(length=100, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    answered_at = Timestamptz(null=True, default=None)


class Vote(Table, tablename="votes"):
    """One user's vote on one question (unique together)."""

    id = UUID(primary_key=True, default=UUID4())
    question = ForeignKey(references=Question, null=False)
    user = ForeignKey(references=User, null=True, on_delete=OnDelete.set_null)
    """NULL once the voter deleted their account: the vote still counts."""
    created_at = Timestamptz(default=TimestamptzNow())


class Mute(Table, tablename="mutes"):
    """A user who may not ask or vote in a meeting (unique together)."""

    id = UUID(primary_key=True, default=UUID4())
    meeting = ForeignKey(references=Meeting, null=False)
    user = ForeignKey(references=User, null=False)
    created_at = Timestamptz(default=TimestamptzNow())
