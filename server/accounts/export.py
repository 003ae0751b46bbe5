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
from server.accounts.service import SESSIONS_SQL, login_session
from server.auth.identity import Principal
from server.auth.schemas import ApiKey
from server.auth.service import USER_COLUMNS, user_of
from server.calendar.service import connection_of
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
        calendars = await connection.fetch(
            """SELECT id, provider, account_email, status, error, last_synced_at, created_at
               FROM calendar_connections WHERE "user" = $1 ORDER BY created_at, id""",
            user_id,
        )
        answers = await connection.fetch(
            """SELECT p.id AS poll_id, p.meeting AS meeting_id, m.title AS meeting_title, p.title AS poll_title,
                      p.kind, p.options, r.option_ids, r.value, r.words, r.created_at, r.updated_at
               FROM poll_responses r JOIN polls p ON p.id = r.poll JOIN meetings m ON m.id = p.meeting
               WHERE r."user" = $1 ORDER BY r.created_at, p.id""",
            user_id,
        )
    return Export(
        exported_at=datetime.now(UTC),
        profile=user_of(profile),
        meetings_owned=[meeting_of(row) for row in meetings],
        memberships=[ExportedMembership(**dict(row)) for row in memberships],
        questions=[ExportedQuestion(**dict(row)) for row in questions],
        votes=[ExportedVote(**dict(row)) for row in votes],
        poll_answers=[_poll_answer(row) for row in answers],
        notifications=[
            ExportedNotification(**{**dict(row), "data": _json_object(row["data"])}) for row in notifications
        ],
        api_keys=[ApiKey(**dict(row)) for row in keys],
        sessions=[login_session(row, principal.family_id) for row in sessions],
        calendar_connections=[connection_of(row) for row in calendars],
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
