"""The meeting rooms: `meeting:<id>` (everyone in the meeting) and `meeting:<id>:moderation` (owner, presenters).

Authorisation asks `role_in`, the one question every meeting permission asks (here through
`cached_role_in`, so a rejoin needs no PostgreSQL). Someone with no role gets `not_found`,
exactly like a meeting that does not exist (or a malformed room name), so the room layer never
confirms that someone else's meeting exists; a participant asking for the moderation room
knows the meeting, so they get `forbidden`.

The snapshot is SPEC's `{"meeting": Meeting, "questions": [Question], "presence": {"count"},
"polls": [Poll], "mine": {"votes", "responses"}}`. Questions, polls and the joiner's own votes and
answers come from injected callables, so this module does not depend on the Q&A or polls
features: `server.app` wires the real ones; alone, the room has none.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.protocol import ErrorCode, FrameError
from channels.seams import SessionView
from server.auth.identity import Principal
from server.meetings.roles import MODERATORS, cached_role_in
from server.meetings.service import load_meeting
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


def parse_meeting_room(room: str) -> tuple[uuid.UUID, bool] | None:
    """`(meeting_id, moderation)` for `meeting:<uuid>` / `meeting:<uuid>:moderation`, else None."""
    parts = room.split(":")
    if parts[0] != "meeting" or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "moderation"):
        return None
    try:
        meeting_id = uuid.UUID(parts[1])
    except ValueError:
        return None
    if str(meeting_id) != parts[1].lower():
        return None  # one spelling per room, or one meeting would have several rooms
    return meeting_id, len(parts) == 3


def principal_of(session: SessionView) -> Principal:
    """The `Principal` the authenticator put in the session's identity (`server.realtime`)."""
    principal = session.identity.context
    if not isinstance(principal, Principal):
        raise TypeError("the session was not authenticated by server.realtime.authenticator")
    return principal


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
        return room.startswith("meeting:")

    def tracks_presence(self, room: str) -> bool:
        parsed = parse_meeting_room(room)
        return parsed is not None and not parsed[1]

    async def authorize(self, session: SessionView, room: str) -> None:
        parsed = parse_meeting_room(room)
        if parsed is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        meeting_id, moderation = parsed
        role = await cached_role_in(self.services, meeting_id, principal_of(session))
        if role is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        if moderation and role not in MODERATORS:
            raise FrameError(ErrorCode.FORBIDDEN, "the moderation room is for the owner and presenters")

    async def snapshot(self, session: SessionView, room: str) -> dict[str, Any]:
        parsed = parse_meeting_room(room)
        if parsed is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        meeting_id, moderation = parsed
        meeting = await load_meeting(self.services, meeting_id)
        if meeting is None:
            raise FrameError(ErrorCode.NOT_FOUND, "no such meeting")
        questions = await self.questions_snapshot(session, meeting_id, moderation)
        count = await self.presence_count(f"meeting:{meeting_id}")
        polls = await self.polls_snapshot(meeting_id, moderation)
        mine = await self.mine(session, meeting_id)
        return {"meeting": meeting, "questions": questions, "presence": {"count": count}, "polls": polls, "mine": mine}
