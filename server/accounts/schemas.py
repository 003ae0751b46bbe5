"""Request and response bodies of account self-service (docs/api.md, "Account self-service")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from server.auth.schemas import ApiKey, DisplayName, Password, User
from server.calendar.schemas import Connection
from server.meetings.schemas import Meeting
from server.rest import Email


class ProfilePatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    """1..80 characters after trimming."""
    email: Email | msgspec.UnsetType = msgspec.UNSET
    """A new email needs `current_password`."""
    current_password: str | msgspec.UnsetType = msgspec.UNSET


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    current_password: str
    new_password: Password
    """8..1024 characters, as at registration."""


class PasswordConfirm(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    password: str


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email


class ResetConfirm(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: str
    new_password: Password


class LoginSession(msgspec.Struct, kw_only=True):
    """One login (refresh-token family) of the caller."""

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    """When the login last signed in or refreshed its access token (every 15 minutes while in use)."""
    user_agent: str | None
    current: bool
    """True for the login the calling access token belongs to."""


class ExportedQuestion(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    meeting_id: uuid.UUID
    meeting_title: str
    text: str
    status: str
    anonymous: bool
    votes: int
    answer: str | None
    created_at: datetime
    updated_at: datetime
    answered_at: datetime | None


class ExportedVote(msgspec.Struct, kw_only=True):
    question_id: uuid.UUID
    meeting_id: uuid.UUID
    meeting_title: str
    created_at: datetime


class ExportedMembership(msgspec.Struct, kw_only=True):
    meeting_id: uuid.UUID
    meeting_title: str
    role: str
    created_at: datetime


class ExportedPollAnswer(msgspec.Struct, kw_only=True):
    poll_id: uuid.UUID
    meeting_id: uuid.UUID
    meeting_title: str
    poll_title: str
    kind: str
    answer: dict[str, Any]
    """`{"options": [{id, text}]}` (choice), `{"value": int}` (rating) or `{"words": [str]}` (word cloud)."""
    created_at: datetime
    updated_at: datetime


class ExportedNotification(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read: bool


class Export(msgspec.Struct, kw_only=True):
    """Everything stored about the caller, and nothing about anyone else (no other person's name or id)."""

    exported_at: datetime
    profile: User
    meetings_owned: list[Meeting]
    memberships: list[ExportedMembership]
    """Meetings the caller presents or joined as a participant."""
    questions: list[ExportedQuestion]
    votes: list[ExportedVote]
    poll_answers: list[ExportedPollAnswer]
    notifications: list[ExportedNotification]
    api_keys: list[ApiKey]
    sessions: list[LoginSession]
    calendar_connections: list[Connection]
    """Google or Outlook accounts connected for calendar sync (never their tokens)."""
