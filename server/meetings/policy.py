"""The meeting rooms: `meeting:<id>` (everyone in the meeting) and `meeting:<id>:moderation` (owner, presenters).

`authorize` is the one authorisation point of meeting rooms: the `join` of a room and every
frame naming it (`ask`, `vote`, `moderate`...) get its `Grant`, whose context is a
`MeetingAccess` (meeting id, room, role); handlers act on it and never look roles up again.
It asks `cached_role_in`, the one versioned role cache (`server.cache`) that REST guards use
too, so removing a presenter or deleting a meeting is seen by the next frame on every process.
Someone with no role gets `not_found`,
exactly like a meeting that does not exist (or a malformed room name), so the room layer never
confirms that someone else's meeting exists; a participant asking for the moderation room
knows the meeting, so they get `forbidden`.

The snapshot is the documented `{"meeting": Meeting, "questions": [Question], "presence": {"count"},
"polls": [Poll], "mine": {"votes", "responses"}}`. Questions, polls and the joiner's own votes and
answers come from injected callables, so this module does not depend on the Q&A or polls
features: `server.app` wires the real ones; alone, the room has none.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from channels.protocol import ErrorCode, FrameError
from channels.seams import Grant, SessionView
from server.auth.identity import principal_of
from server.meetings.events import participant_view
from server.meetings.roles import MODERATORS, Role, cached_role_in
from server.meetings.service import load_meeting
from server.rooms import meeting_room, owns_meeting_room, parse_meeting_room
from server.services import Services

QuestionsSnapshot = Callable[[SessionView, uuid.UUID, bool], Awaitable[list[Any]]]
"""`(session, meeting_id, moderation)` -> the questions that room's audience may see, in display order."""

PollsSnapshot = Callable[[uuid.UUID, bool], Awaitable[list[Any]]]
"""`(meeting_id, moderation)` -> the polls that room may see, by position."""

MineSnapshot = Callable[[SessionView, uuid.UUID], Awaitable[dict[str, Any]]]
"""`(session, meeting_id)` -> `{"votes": [question_id], "responses": {poll_id: response}}` of the joiner."""

PresenceCount = Callable[[str], Awaitable[int]]


async def no_questions(session: SessionView, meeting_id: uuid.UUID, moderation: bool) -> list[Any]:
    return []


async def no_polls(meeting_id: uuid.UUID, moderation: bool) -> list[Any]:
    return []


async def nothing_mine(session: SessionView, meeting_id: uuid.UUID) -> dict[str, Any]:
    return {"votes": [], "responses": {}}


class MeetingAccess(msgspec.Struct, frozen=True):
    """A meeting room's `Grant.context`: the meeting, which of its rooms, and the caller's role there."""

    meeting_id: uuid.UUID
    moderation: bool
    role: Role

    @property
    def moderator(self) -> bool:
        return self.role in MODERATORS

    def require_moderator(self) -> None:
        if self.role not in MODERATORS:
            raise FrameError(ErrorCode.FORBIDDEN, "only the owner or a presenter can do that")


def access_of(grant: Grant) -> MeetingAccess:
    """The meeting access a `MeetingRoomPolicy` put in the grant of a `meeting:` room."""
    access = grant.context
    if not isinstance(access, MeetingAccess):
        raise FrameError(ErrorCode.BAD_REQUEST, "this frame acts in a meeting room: meeting:<id>")
    return access


class MeetingRoomPolicy:
    """Owns every room starting with `meeting:`; counts presence in the public room only."""

    def __init__(
        self,
        services: Services,
        *,
        presence_count: PresenceCount,
        questions_snapshot: QuestionsSnapshot = no_questions,
        polls_snapshot: PollsSnapshot = no_polls,
        mine: MineSnapshot = nothing_mine,
    ) -> None:
        self.services = services
        self.presence_count = presence_count
        self.questions_snapshot = questions_snapshot
        self.polls_snapshot = polls_snapshot
        self.mine = mine

    def owns(self, room: str) -> bool:
        return owns_meeting_room(room)

    def tracks_presence(self, room: str) -> bool:
        parsed = parse_meeting_room(room)
        return parsed is not None and not parsed.moderation

    async def authorize(self, session: SessionView, room: str) -> Grant:
        """The caller's role in the room's meeting, from the one versioned role cache (`cached_role_in`)."""
        parsed = parse_meeting_room(room)
        if parsed is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        meeting_id, moderation = parsed
        role = await cached_role_in(self.services, meeting_id, principal_of(session))
        if role is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        if moderation and role not in MODERATORS:
            raise FrameError(ErrorCode.FORBIDDEN, "the moderation room is for the owner and presenters")
        return Grant(room=room, role=role, context=MeetingAccess(meeting_id, moderation, role))

    async def snapshot(self, session: SessionView, room: str) -> dict[str, Any]:
        parsed = parse_meeting_room(room)
        if parsed is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        meeting_id, moderation = parsed
        meeting = await load_meeting(self.services, meeting_id)
        if meeting is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        questions = await self.questions_snapshot(session, meeting_id, moderation)
        count = await self.presence_count(meeting_room(meeting_id))
        polls = await self.polls_snapshot(meeting_id, moderation)
        mine = await self.mine(session, meeting_id)
        if not moderation:
            meeting = participant_view(meeting)
        return {"meeting": meeting, "questions": questions, "presence": {"count": count}, "polls": polls, "mine": mine}
