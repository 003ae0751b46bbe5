"""`GET /me/export`: everything stored about the caller, and nothing about anyone else.

What is the caller's: their profile, the meetings they own (in full), the meetings they present
or joined (title and role), the questions they asked (with the meeting's title, and the answer
they were given), the questions they upvoted (ids and the meeting's title only: another person's
question, name or text is not theirs to take), their poll answers, notifications, API keys
(without the keys, which are stored only as hashes) and logins. Password hashes, token hashes and
other people's ids or names never appear.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from server.accounts.schemas import (
    Export,
    ExportedMembership,
    ExportedNotification,
    ExportedPollAnswer,
    ExportedQuestion,
    ExportedVote,
)
from server.accounts.service import SESSIONS_SQL, login_session
from server.auth.identity import Principal
from server.auth.schemas import ApiKey
from server.auth.service import USER_COLUMNS, user_of
from server.errors import unauthorized
from server.meetings.service import MEETING_COLUMNS, meeting_of
from server.services import Services


async def export(services: Services, principal: Principal) -> Export:
    user_id = principal.user_id
    async with services.db.pool.acquire() as connection, connection.transaction(isolation="repeatable_read"):
        profile = await connection.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
        if profile is None:
            raise unauthorized()
        meetings = await connection.fetch(
            f"SELECT {MEETING_COLUMNS} FROM meetings WHERE owner = $1 ORDER BY created_at, id", user_id
        )
        memberships = await connection.fetch(
            """SELECT m.id AS meeting_id, m.title AS meeting_title, mm.role, mm.created_at
               FROM meeting_members mm JOIN meetings m ON m.id = mm.meeting
               WHERE mm."user" = $1 ORDER BY mm.created_at, m.id""",
            user_id,
        )
        questions = await connection.fetch(
            """SELECT q.id, q.meeting AS meeting_id, m.title AS meeting_title, q.text, q.status, q.anonymous,
                      q.votes, q.answer, q.created_at, q.updated_at, q.answered_at
               FROM questions q JOIN meetings m ON m.id = q.meeting
               WHERE q.author = $1 ORDER BY q.created_at, q.id""",
            user_id,
        )
        votes = await connection.fetch(
            """SELECT v.question AS question_id, q.meeting AS meeting_id, m.title AS meeting_title, v.created_at
               FROM votes v JOIN questions q ON q.id = v.question JOIN meetings m ON m.id = q.meeting
               WHERE v."user" = $1 ORDER BY v.created_at, v.question""",
            user_id,
        )
        notifications = await connection.fetch(
            """SELECT id, kind, title, body, data, created_at, read_at IS NOT NULL AS read
               FROM notifications WHERE "user" = $1 ORDER BY created_at, id""",
            user_id,
        )
        keys = await connection.fetch(
            'SELECT id, name, created_at, last_used_at FROM api_keys WHERE "user" = $1 ORDER BY created_at, id',
            user_id,
        )
        sessions = await connection.fetch(SESSIONS_SQL, user_id)
    return Export(
        exported_at=datetime.now(UTC),
        profile=user_of(profile),
        meetings_owned=[meeting_of(row) for row in meetings],
        memberships=[ExportedMembership(**dict(row)) for row in memberships],
        questions=[ExportedQuestion(**dict(row)) for row in questions],
        votes=[ExportedVote(**dict(row)) for row in votes],
        poll_answers=_poll_answers(user_id),
        notifications=[
            ExportedNotification(**{**dict(row), "data": _json_object(row["data"])}) for row in notifications
        ],
        api_keys=[ApiKey(**dict(row)) for row in keys],
        sessions=[login_session(row, principal.family_id) for row in sessions],
    )


def _poll_answers(user_id: uuid.UUID) -> list[ExportedPollAnswer]:
    """Polls are not stored by this build of roomcast, so nobody has answered one."""
    return []


def _json_object(raw: object) -> dict[str, object]:
    value = msgspec.json.decode(raw) if isinstance(raw, str | bytes) else raw
    return value if isinstance(value, dict) else {}
