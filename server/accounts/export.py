"""`GET /me/export`: everything stored about the caller, and nothing about anyone else.

What is the caller's: their profile, the meetings they own (in full), the meetings they present
or joined (title and role), the questions they asked (with the meeting's title, and the answer
they were given), the questions they upvoted (ids and the meeting's title only: another person's
question, name or text is not theirs to take), their poll answers, notifications, API keys
(without the keys, which are stored only as hashes), logins and calendar connections (without
their provider tokens). Password hashes, token hashes and other people's ids or names never
appear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from server.accounts.schemas import (
    Export,
    ExportedMembership,
    ExportedNotification,
    ExportedPollAnswer,
    ExportedQuestion,
    ExportedVote,
)
from server.accounts.service import live_logins, login_session
from server.auth.identity import Principal
from server.auth.service import get_user, list_api_keys
from server.calendar.service import CONNECTION_VIEW_FIELDS, connection_of
from server.calendar.tables import CalendarConnection
from server.meetings.service import MEETING_FIELDS, meeting_of
from server.meetings.tables import Meeting, MeetingMember
from server.notifications.service import COLUMNS as NOTIFICATION_COLUMNS
from server.notifications.tables import Notification
from server.polls.tables import PollResponse
from server.qa.tables import Question, Vote
from server.services import Services


async def export(services: Services, principal: Principal) -> Export:
    """Everything about the caller, read in one repeatable-read transaction so the parts agree."""
    user_id = principal.user_id
    async with services.db.transaction(isolation="repeatable_read"):
        profile = await get_user(services, user_id)  # unauthorized if the account is gone
        meetings = await (
            Meeting.select(*MEETING_FIELDS).where(Meeting.owner == user_id).order_by(Meeting.created_at, Meeting.id)
        )
        memberships = await (
            MeetingMember.select(
                MeetingMember.meeting.as_alias("meeting_id"),
                MeetingMember.meeting._.title.as_alias("meeting_title"),
                MeetingMember.role,
                MeetingMember.created_at,
            )
            .where(MeetingMember.user == user_id)
            .order_by(MeetingMember.created_at, MeetingMember.meeting)
        )
        questions = await (
            Question.select(
                Question.id,
                Question.meeting.as_alias("meeting_id"),
                Question.meeting._.title.as_alias("meeting_title"),
                Question.text,
                Question.status,
                Question.anonymous,
                Question.votes,
                Question.answer,
                Question.created_at,
                Question.updated_at,
                Question.answered_at,
            )
            .where(Question.author == user_id)
            .order_by(Question.created_at, Question.id)
        )
        votes = await (
            Vote.select(
                Vote.question.as_alias("question_id"),
                Vote.question._.meeting.as_alias("meeting_id"),
                Vote.question._.meeting._.title.as_alias("meeting_title"),
                Vote.created_at,
            )
            .where(Vote.user == user_id)
            .order_by(Vote.created_at, Vote.question)
        )
        notifications = await (
            Notification.select(*NOTIFICATION_COLUMNS)
            .where(Notification.user == user_id)
            .order_by(Notification.created_at, Notification.id)
        )
        keys = await list_api_keys(services, user_id)
        sessions = await live_logins(user_id)
        calendars = await (
            CalendarConnection.select(*CONNECTION_VIEW_FIELDS)
            .where(CalendarConnection.user == user_id)
            .order_by(CalendarConnection.created_at, CalendarConnection.id)
        )
        answers = await (
            PollResponse.select(
                PollResponse.poll.as_alias("poll_id"),
                PollResponse.poll._.meeting.as_alias("meeting_id"),
                PollResponse.poll._.meeting._.title.as_alias("meeting_title"),
                PollResponse.poll._.title.as_alias("poll_title"),
                PollResponse.poll._.kind.as_alias("kind"),
                PollResponse.poll._.options.as_alias("options"),
                PollResponse.option_ids,
                PollResponse.value,
                PollResponse.words,
                PollResponse.created_at,
                PollResponse.updated_at,
            )
            .where(PollResponse.user == user_id)
            .order_by(PollResponse.created_at, PollResponse.poll)
        )
    return Export(
        exported_at=datetime.now(UTC),
        profile=profile,
        meetings_owned=[meeting_of(row) for row in meetings],
        memberships=[ExportedMembership(**row) for row in memberships],
        questions=[ExportedQuestion(**row) for row in questions],
        votes=[ExportedVote(**row) for row in votes],
        poll_answers=[_poll_answer(row) for row in answers],
        notifications=[_notification(row) for row in notifications],
        api_keys=keys,
        sessions=[login_session(row, principal.family_id) for row in sessions],
        calendar_connections=[connection_of(row) for row in calendars],
    )


def _notification(row: dict[str, Any]) -> ExportedNotification:
    return ExportedNotification(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        data=_json_object(row["data"]),
        created_at=row["created_at"],
        read=row["read_at"] is not None,
    )


def _poll_answer(row: Any) -> ExportedPollAnswer:
    """One answer as the person gave it: the options they picked (id and text), the value or the words."""
    options = _json_list(row["options"])
    texts = {str(o.get("id")): o.get("text") for o in options if isinstance(o, dict)}
    answer: dict[str, Any]
    if row["kind"] == "choice":
        answer = {"options": [{"id": i, "text": texts.get(i)} for i in row["option_ids"]]}
    elif row["kind"] == "rating":
        answer = {"value": row["value"]}
    else:
        answer = {"words": list(row["words"])}
    return ExportedPollAnswer(
        poll_id=row["poll_id"],
        meeting_id=row["meeting_id"],
        meeting_title=row["meeting_title"],
        poll_title=row["poll_title"],
        kind=row["kind"],
        answer=answer,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _json_list(raw: object) -> list[Any]:
    value = msgspec.json.decode(raw) if isinstance(raw, str | bytes) else raw
    return value if isinstance(value, list) else []


def _json_object(raw: object) -> dict[str, object]:
    value = msgspec.json.decode(raw) if isinstance(raw, str | bytes) else raw
    return value if isinstance(value, dict) else {}
