"""The polls-and-reactions part of the protocol: client frames, the `Poll` shape and the room events.

Every field a client sends is untrusted; `server.polls.handlers` and `server.polls.rules` check
them. New fields always have defaults, so older clients keep working.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from channels.protocol import Event, RoomFrame

PollKind = Literal["choice", "rating", "word_cloud"]
ShowResults = Literal["live", "closed", "never"]
PollStatus = Literal["draft", "open", "closed"]
PollActionName = Literal["open", "close", "reset"]
Reaction = Literal["like", "love", "laugh", "clap", "celebrate", "wow", "confused"]

REACTIONS: tuple[Reaction, ...] = ("like", "love", "laugh", "clap", "celebrate", "wow", "confused")


# --- client frames -------------------------------------------------------------------------


class PollAction(RoomFrame, tag="poll_action", kw_only=True):
    """Owner, presenter: `open` (from draft or closed; closes the meeting's other open poll), `close`, `reset`."""

    poll_id: str
    action: PollActionName


class Respond(RoomFrame, tag="respond", kw_only=True):
    """Answer a poll: `option_ids` (choice), `value` (rating) or `words` (word cloud), the field of its kind only."""

    poll_id: str
    option_ids: list[str] | None = None
    value: int | None = None
    words: list[str] | None = None


class React(RoomFrame, tag="react", kw_only=True):
    """A reaction to the room; not stored, at most 10 per user per 10 s."""

    reaction: Reaction


POLL_CLIENT_FRAMES = (PollAction, Respond, React)


# --- the Poll shape ------------------------------------------------------------------------


class PollOption(msgspec.Struct, kw_only=True):
    id: str
    text: str


class WordCount(msgspec.Struct, kw_only=True):
    text: str
    """The most frequent spelling of the word."""
    count: int


class PollResults(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Results by kind: `counts` (choice, by option id; rating, "1".."scale_max") and `average` (rating),
    or `words` (word cloud: the 50 most frequent, by count then text)."""

    respondents: int
    counts: dict[str, int] | UnsetType = UNSET
    average: float | UnsetType | None = UNSET
    words: list[WordCount] | UnsetType = UNSET


class PollOut(msgspec.Struct, kw_only=True):
    """A poll as one audience sees it: `results` is null where that viewer may not see them (yet)."""

    id: str
    meeting_id: str
    kind: PollKind
    title: str
    options: list[PollOption]
    multiple: bool
    scale_max: int
    anonymous: bool
    show_results: ShowResults
    status: PollStatus
    position: int
    created_at: str
    opened_at: str | None
    closed_at: str | None
    results: PollResults | None


class PollAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One user's answer, with the one field of its poll's kind."""

    option_ids: list[str] | UnsetType = UNSET
    value: int | UnsetType = UNSET
    words: list[str] | UnsetType = UNSET


# --- room events ---------------------------------------------------------------------------


class PollOpened(Event, tag="poll.opened", kw_only=True):
    poll: PollOut


class PollClosed(Event, tag="poll.closed", kw_only=True):
    poll: PollOut


class PollUpdated(Event, tag="poll.updated", kw_only=True):
    """A change that room may see: created or edited (moderation room), reset, show_results, position."""

    poll: PollOut


class PollRemoved(Event, tag="poll.removed", kw_only=True):
    poll_id: str


class PollResultsEvent(Event, tag="poll.results", kw_only=True):
    """Coalesced: at most one per 500 ms per poll; the last one after a burst carries the exact totals."""

    poll_id: str
    results: PollResults


class PollResponseEvent(Event, tag="poll.response", kw_only=True):
    """In `user:<id>`: the user's own answer, so their other tabs and devices show it."""

    poll_id: str
    response: PollAnswer


class Reactions(Event, tag="reactions", kw_only=True):
    """The reactions sent in the meeting since the previous one, summed over every server process."""

    counts: dict[str, int]


POLL_EVENTS = (
    PollOpened,
    PollClosed,
    PollUpdated,
    PollRemoved,
    PollResultsEvent,
    PollResponseEvent,
    Reactions,
)
