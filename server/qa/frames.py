"""The Q&A part of the protocol: client frames, the `Question` shape and the room events.

Every field a client sends is untrusted; the handlers in `server.qa.handlers` validate them.
New fields always have defaults, so older clients keep working.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from channels.protocol import Event, RoomFrame

ModerateAction = Literal["approve", "dismiss", "pin", "unpin", "answer", "reopen", "mute_author", "unmute_author"]
DismissReason = Literal["duplicate", "off_topic", "inappropriate", "answered", "other"]
QuestionStatus = Literal["pending", "live", "answered", "dismissed"]


# --- client frames -------------------------------------------------------------------------


class Ask(RoomFrame, tag="ask", kw_only=True):
    text: str
    anonymous: bool = False
    client_id: str | None = None
    """A repeated client_id from the same user in the same meeting returns the first question."""


class VoteFrame(RoomFrame, tag="vote", kw_only=True):
    question_id: str
    up: bool = True


class Moderate(RoomFrame, tag="moderate", kw_only=True):
    question_id: str
    action: ModerateAction
    text: str | None = None
    """The answer text, for `answer`."""
    reason: DismissReason | None = None
    """Why, for `dismiss`."""


class Edit(RoomFrame, tag="edit", kw_only=True):
    question_id: str
    text: str


class Delete(RoomFrame, tag="delete", kw_only=True):
    question_id: str


class Merge(RoomFrame, tag="merge", kw_only=True):
    question_id: str
    into_id: str


class Similar(RoomFrame, tag="similar", kw_only=True):
    text: str


QA_CLIENT_FRAMES = (Ask, VoteFrame, Moderate, Edit, Delete, Merge, Similar)


# --- the Question shape --------------------------------------------------------------------


class Author(msgspec.Struct, kw_only=True):
    id: str
    display_name: str


class QuestionOut(msgspec.Struct, kw_only=True):
    """A question as one audience sees it: `author` is null for anonymous questions, except for their author."""

    id: str
    meeting_id: str
    text: str
    status: QuestionStatus
    pinned: bool
    votes: int
    author: Author | None
    anonymous: bool
    answer: str | None
    created_at: str
    updated_at: str
    answered_at: str | None
    flagged: bool = False
    dismiss_reason: DismissReason | None = None
    merged_into: str | None = None


class ModeratorQuestionOut(QuestionOut, kw_only=True):
    """What owners and presenters see: also which blocked words held the question."""

    flagged_words: list[str] = msgspec.field(default_factory=list)


class SimilarItem(msgspec.Struct, kw_only=True):
    question_id: str
    text: str
    votes: int
    score: float


# --- room events ---------------------------------------------------------------------------


class QuestionCreated(Event, tag="question.created", kw_only=True):
    question: QuestionOut


class QuestionUpdated(Event, tag="question.updated", kw_only=True):
    question: QuestionOut


class QuestionRemoved(Event, tag="question.removed", kw_only=True):
    question_id: str
    merged_into: str | None = None


class QuestionVotes(Event, tag="question.votes", kw_only=True):
    question_id: str
    votes: int


QA_EVENTS = (QuestionCreated, QuestionUpdated, QuestionRemoved, QuestionVotes)
