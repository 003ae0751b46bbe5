"""Request and response bodies of the meeting endpoints (docs/api.md, "Meetings (setup)").

`Meeting` is also what the realtime side sends (`meeting.updated`, the meeting room's snapshot),
so there is exactly one shape of a meeting on every wire. Request structs forbid unknown fields
and state every limit msgspec can check; the rest is checked in `server.meetings.service`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from server.rest import Email, multi_line, one_line

Status = Literal["scheduled", "live", "ended", "cancelled"]
Moderation = Literal["post", "pre"]
Timestamp = Annotated[datetime, Meta(description="ISO 8601; `Z` or an offset, UTC when neither is given")]
QuestionLength = Annotated[int, Meta(ge=1, le=2000)]
BlockedWord = Annotated[str, one_line(50)]
Title = Annotated[str, one_line(200)]
Description = Annotated[str, multi_line(10_000)]
BlockedWords = Annotated[list[BlockedWord], Meta(max_length=200)]


class MeetingSettings(msgspec.Struct, kw_only=True):
    """A meeting's settings, every field with the documented default."""

    moderation: Moderation = "post"
    """`pre`: questions wait for a moderator's approval before anyone else sees them."""
    anonymous_questions: bool = True
    max_question_length: QuestionLength = 300
    blocked_words: BlockedWords = msgspec.field(default_factory=list)
    """A question containing one (whole word, case- and accent-insensitive) is held for moderation."""


class SettingsIn(MeetingSettings, forbid_unknown_fields=True, kw_only=True):
    """`settings` as a client sends it on create: missing fields take their defaults."""


class SettingsPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`settings` in a PATCH: only the fields given change."""

    moderation: Moderation | UnsetType = UNSET
    anonymous_questions: bool | UnsetType = UNSET
    max_question_length: QuestionLength | UnsetType = UNSET
    blocked_words: BlockedWords | UnsetType = UNSET


class MeetingSource(msgspec.Struct, kw_only=True):
    """The calendar event a meeting follows."""

    provider: str
    calendar_event_id: str
    connection_id: str


class Meeting(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    title: str
    description: str
    starts_at: datetime | None
    ends_at: datetime | None
    status: Status
    join_code: str
    """8 characters from an alphabet without look-alikes; unique."""
    settings: MeetingSettings
    owner_id: uuid.UUID
    created_at: datetime
    source: MeetingSource | None
    """Set for meetings created from a calendar event."""


class SourceIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`source` of `POST /meetings`: an event of one of the caller's calendar connections."""

    connection_id: str
    calendar_event_id: str


class SourceEvent(msgspec.Struct, kw_only=True):
    """The calendar event a new meeting is made from, as its connection's provider told it."""

    provider: str
    title: str
    starts_at: datetime | None
    ends_at: datetime | None


class MeetingCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title | UnsetType = UNSET
    """1..200 characters after trimming; required unless `source` gives it."""
    description: Description | None = None
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    """Not before `starts_at`."""
    settings: SettingsIn | None = None
    source: SourceIn | None = None
    """Create the meeting from a calendar event: title, starts_at and ends_at come from it unless given,
    and the meeting then follows the event (moved, cancelled)."""


class MeetingPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Any subset of the fields; `null` clears description, starts_at and ends_at."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    starts_at: Timestamp | UnsetType | None = UNSET
    ends_at: Timestamp | UnsetType | None = UNSET
    settings: SettingsPatch | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    """`scheduled` -> `live` -> `ended`; any -> `cancelled`. Anything else is 409."""


class MeetingPage(msgspec.Struct, kw_only=True):
    items: list[Meeting]
    next_cursor: str | None
    """Pass as `cursor` for the next page; None on the last page."""


class PresenterIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email


class Presenter(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    role: Literal["presenter"]


class PresenterItem(msgspec.Struct, kw_only=True):
    """A presenter as the meeting's owner and presenters see them (they invited them by email)."""

    user_id: uuid.UUID
    email: str | None
    display_name: str


class PresenterList(msgspec.Struct, kw_only=True):
    items: list[PresenterItem]
    """Oldest presenter first."""


class JoinIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    join_code: str
    """Case-insensitive; spaces and dashes are ignored."""
    display_name: Annotated[str, one_line(80)] | None = None
    """Required without credentials (1..80 characters): the guest's name."""


class Joined(msgspec.Struct, kw_only=True, omit_defaults=True):
    meeting_id: uuid.UUID
    guest_token: str | UnsetType = UNSET
    """Only for guests: a bearer token valid for this meeting alone."""
    expires_in: int | UnsetType = UNSET
    """Only for guests: seconds until `guest_token` expires."""
