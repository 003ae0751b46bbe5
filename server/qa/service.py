"""Q&A persistence: one transaction per action, returning what changed so the caller can publish it.

Asking, voting, the join's snapshot, `similar` and the export live here; what happens to a
question after it is asked (moderation, edit, delete, merge) is `server.qa.transitions`.

Rows are read and written through the Piccolo tables (`server.qa.tables`). Hand-written SQL is
kept where it earns its place, each statement saying why: the ask and the vote (the hot writes
of a town hall), the trigram search, the advisory lock of `in_order`, the snapshot reads of
every join and the question reads of a moderation (Piccolo builds each query in Python every
time it runs, measured at 0.15-2.7 ms more for these).

Invariants are database facts: one pinned question per meeting (partial unique index), one
question per (meeting, author, client_id), one vote per (question, user). Changes to a
meeting's existing questions run inside `in_order`, on the connection holding the meeting's
lock (`server.db.on_connection`), so they commit and publish one at a time per meeting.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
from piccolo.columns import Column

from channels.protocol import ErrorCode, FrameError
from server.db import advisory_locked, on_connection
from server.meetings.schemas import MeetingSettings
from server.meetings.tables import Meeting
from server.qa.rules import blocked_words_in, clean_text, qa_settings
from server.qa.tables import Question

Row = dict[str, Any]
Values = dict[Column | str, Any]
"""New column values of one question, for `Question.update`."""

"""The database's clock, as the hand-written statements and the column defaults use it."""

QUESTION_FIELDS: tuple[Column, ...] = (
    Question.id,
    Question.meeting,
    Question.author,
    Question.author.display_name.as_alias("author_name"),
    Question.text,
    Question.status,
    Question.pinned,
    Question.votes,
    Question.anonymous,
    Question.answer,
    Question.flagged,
    Question.flagged_words,
    Question.dismiss_reason,
    Question.merged_into,
    Question.client_id,
    Question.created_at,
    Question.updated_at,
    Question.answered_at,
)
"""A question as `question_view` reads it: its columns and its author's name (Piccolo joins `users`).

`QUESTION_COLUMNS` is the same for hand-written statements (a test keeps the two equal)."""

QUESTION_COLUMNS = """q.id, q.meeting, q.author, u.display_name AS author_name, q.text, q.status, q.pinned,
    q.votes, q.anonymous, q.answer, q.flagged, q.flagged_words, q.dismiss_reason, q.merged_into,
    q.client_id, q.created_at, q.updated_at, q.answered_at"""
"""`QUESTION_FIELDS` for the hand-written statements (`q` is `questions`, `u` its author in `users`)."""

SELECT_QUESTION = f"""SELECT {QUESTION_COLUMNS} FROM questions q LEFT JOIN users u ON u.id = q.author
WHERE q.id = $1 AND q.meeting = $2"""

SNAPSHOT_LIMIT = 500
"""Questions in one snapshot: the top 500 by the snapshot order (pinned, votes, age)."""

PUBLIC_STATUSES = ("live", "answered")


@dataclass(slots=True)
class MeetingInfo:
    id: uuid.UUID
    status: str
    settings: MeetingSettings


@dataclass(slots=True)
class Change:
    """A question before and after one action (None where it did not or no longer exists)."""

    before: Row | None
    after: Row | None
    merged_into: uuid.UUID | None = None


def in_order(pool: asyncpg.Pool, meeting_id: uuid.UUID) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection holding the meeting's advisory lock, for changes to its existing questions.

    The caller commits *and publishes* inside it, so changes to one meeting's questions reach
    every client in the order they were committed, even when they arrive at different server
    processes at once (two concurrent pins must not leave clients with two pinned questions).
    The lock is session-level (hand-written in `server.db.advisory_locked`: Piccolo has no
    advisory locks) because it must outlive the COMMIT until the publish is done; a
    transaction-level lock would let the next change commit and publish before this one's
    publish. The changes run on this same connection (`on_connection`), never on a second
    pooled one, which could wait forever on a pool whose connections all wait on locks.
    """
    return advisory_locked(pool, f"qa:{meeting_id}")


def not_found(what: str = "question") -> FrameError:
    return FrameError(ErrorCode.NOT_FOUND, f"no such {what} in this meeting")


async def meeting_info(connection: asyncpg.Connection, meeting_id: uuid.UUID) -> MeetingInfo:
    """The meeting's status and Q&A settings, read on `connection`."""
    async with on_connection(connection):
        row = await Meeting.select(Meeting.status, Meeting.settings).where(Meeting.id == meeting_id).first()
    if row is None:
        raise not_found("meeting")
    return MeetingInfo(meeting_id, row["status"], qa_settings(row["settings"]))


async def fetch_question(connection: asyncpg.Connection, meeting_id: uuid.UUID, question_id: uuid.UUID) -> Row:
    """The question as `question_view` reads it, if it is in `meeting_id` (PITFALLS 21); `not_found` otherwise."""
    # hand-written: a moderation reads two to four questions while holding the meeting's lock, 0.15-0.4 ms more
    # each through Piccolo (measured), and every change to the meeting's questions queues behind that lock
    row = await connection.fetchrow(SELECT_QUESTION, question_id, meeting_id)
    if row is None:
        raise not_found()
    return dict(row)


CLOSED_MEETING = ("ended", "cancelled")
"""Meetings in these statuses take no more asks, votes or edits."""


def meeting_closed(status: str, what: str) -> FrameError:
    return FrameError(ErrorCode.CONFLICT, f"the meeting has {status}; no more {what}")


def muted() -> FrameError:
    return FrameError(ErrorCode.FORBIDDEN, "you are muted in this meeting and cannot ask or vote")


_ASK_CONTEXT = """SELECT status, settings, EXISTS (SELECT 1 FROM mutes WHERE meeting = $1 AND "user" = $2) AS muted
FROM meetings WHERE id = $1"""

_INSERT_QUESTION = f"""WITH q AS (
    INSERT INTO questions (id, meeting, author, text, status, anonymous, flagged, flagged_words, client_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (meeting, author, client_id) WHERE client_id IS NOT NULL DO NOTHING
    RETURNING *
)
SELECT {QUESTION_COLUMNS} FROM q LEFT JOIN users u ON u.id = q.author"""

_ASK = f"""WITH m AS (
    SELECT status, settings, settings = $10::jsonb AS settings_unchanged,
           EXISTS (SELECT 1 FROM mutes WHERE meeting = $2 AND "user" = $3) AS asker_muted
    FROM meetings WHERE id = $2
), q AS (
    INSERT INTO questions (id, meeting, author, text, status, anonymous, flagged, flagged_words, client_id)
    SELECT $1::uuid, $2::uuid, $3::uuid, $4::text, $5::text, $6::boolean, $7::boolean, $8::text[], $9::text FROM m
    WHERE m.settings_unchanged AND NOT m.asker_muted AND m.status NOT IN ('ended', 'cancelled')
    ON CONFLICT (meeting, author, client_id) WHERE client_id IS NOT NULL DO NOTHING
    RETURNING *
)
SELECT m.status AS meeting_status, m.settings AS meeting_settings, m.settings_unchanged, m.asker_muted,
       {QUESTION_COLUMNS}
FROM m LEFT JOIN q ON true LEFT JOIN users u ON u.id = q.author"""
"""An ask in one statement, for a meeting whose settings this process knows (`AskContexts`): stores
the question only if the meeting still has those settings, is open and the asker is not muted;
returns the meeting's state either way (no row: no such meeting)."""

_ASK_STATE = ("meeting_status", "meeting_settings", "settings_unchanged", "asker_muted")


class AskContexts:
    """Each meeting's status and stored settings as this process last read them (a bounded LRU).

    With them an ask checks its rules first and then takes one statement (`_ASK`) instead of two:
    the statement re-reads the meeting and stores the question only if its settings are still
    these, it is open and the asker is not muted. Otherwise nothing is stored and the rules are
    checked again against what that statement read (which also replaces the entry), so a settings
    change applies to the very next ask, as without them, and nothing has to invalidate them; a
    muted asker's refusal changes nothing for the others.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[uuid.UUID, tuple[str, str, MeetingSettings]] = OrderedDict()

    def get(self, meeting_id: uuid.UUID) -> tuple[str, str, MeetingSettings] | None:
        """(status, settings as stored, settings) of the meeting, if known."""
        entry = self._entries.get(meeting_id)
        if entry is not None:
            self._entries.move_to_end(meeting_id)
        return entry

    def put(self, meeting_id: uuid.UUID, status: str, stored: Any) -> MeetingSettings:
        settings = qa_settings(stored)
        if isinstance(stored, str):
            self._entries[meeting_id] = (status, stored, settings)
            self._entries.move_to_end(meeting_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return settings

    def drop(self, meeting_id: uuid.UUID) -> None:
        self._entries.pop(meeting_id, None)


def _new_question(
    meeting_id: uuid.UUID,
    author_id: uuid.UUID,
    text: str,
    anonymous: bool,
    client_id: str | None,
    settings: MeetingSettings,
) -> tuple[Any, ...]:
    """The insert's arguments for an ask that passes the meeting's Q&A rules; FrameError if it does not."""
    if anonymous and not settings.anonymous_questions:
        raise FrameError(ErrorCode.FORBIDDEN, "this meeting does not allow anonymous questions")
    text = clean_text(text, settings.max_question_length)
    if client_id is not None and not 1 <= len(client_id) <= 100:
        raise FrameError(ErrorCode.BAD_REQUEST, "client_id must be 1..100 characters")
    flagged_words = blocked_words_in(text, settings.blocked_words)
    status = "pending" if flagged_words or settings.moderation == "pre" else "live"
    return (uuid.uuid4(), meeting_id, author_id, text, status, anonymous, bool(flagged_words), flagged_words, client_id)


async def ask(
    pool: asyncpg.Pool,
    meeting_id: uuid.UUID,
    author_id: uuid.UUID,
    text: str,
    *,
    anonymous: bool,
    client_id: str | None,
    admit: Callable[[], Awaitable[None]] | None = None,
    refund: Callable[[], Awaitable[None]] | None = None,
    contexts: AskContexts | None = None,
) -> tuple[Row, bool]:
    """Store a new question; returns (question, created). A repeated client_id returns the first one.

    `admit` (the asker's rate limit) runs once the ask has passed every rule, just before the
    insert: an ask refused for its text (blank, too long, control characters) or its meeting's
    state does not use up one of the asker's questions per minute (`refund` gives back one that
    `admit` took when the meeting turns out to have changed).

    No transaction: asks are the hot write of a town hall. With `contexts` and a meeting seen
    before, one statement (`_ASK`); otherwise two (the meeting's state, then the insert). A
    transaction would add round trips without closing any race (a meeting ending between the
    check and the insert is the same under READ COMMITTED either way).
    """
    async with pool.acquire() as connection:
        known = contexts.get(meeting_id) if contexts is not None else None
        question = None
        if contexts is not None and known is not None and known[0] not in CLOSED_MEETING:
            _, stored, settings = known
            try:
                question = _new_question(meeting_id, author_id, text, anonymous, client_id, settings)
            except FrameError:  # maybe only by the settings last read here: refuse only by what is stored now
                contexts.drop(meeting_id)
        context: Any = None  # the meeting's status, stored settings and whether the asker is muted
        if contexts is not None and known is not None and question is not None:
            if admit is not None:
                await admit()
            row = await connection.fetchrow(_ASK, *question, stored)
            if row is not None and row["id"] is not None:
                return {k: v for k, v in row.items() if k not in _ASK_STATE}, True
            unchanged = row is not None and row["settings_unchanged"] and not row["asker_muted"]
            if unchanged and row["meeting_status"] not in CLOSED_MEETING:  # then only a repeated client_id
                return await _asked_before(connection, meeting_id, author_id, client_id), False
            if refund is not None:
                await refund()
            if row is None:
                contexts.drop(meeting_id)
                raise not_found("meeting")
            # the statement read what is stored now: the rules are checked against that, with no second read
            context = {
                "status": row["meeting_status"],
                "settings": row["meeting_settings"],
                "muted": row["asker_muted"],
            }
        if context is None:
            context = await connection.fetchrow(_ASK_CONTEXT, meeting_id, author_id)
            if context is None:
                raise not_found("meeting")
        meeting_status = context["status"]
        if contexts is not None:  # a muted asker leaves the entry as it is: the meeting did not change
            settings = contexts.put(meeting_id, meeting_status, context["settings"])
        else:
            settings = qa_settings(context["settings"])
        if meeting_status in CLOSED_MEETING:
            raise meeting_closed(meeting_status, "questions")
        if context["muted"]:
            raise muted()
        question = _new_question(meeting_id, author_id, text, anonymous, client_id, settings)
        if admit is not None:
            await admit()
        row = await connection.fetchrow(_INSERT_QUESTION, *question)
        if row is not None:
            return dict(row), True
        return await _asked_before(connection, meeting_id, author_id, client_id), False


async def _asked_before(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, author_id: uuid.UUID, client_id: str | None
) -> Row:
    """The question this author already asked with `client_id` (an ask sent again)."""
    question_id = await connection.fetchval(
        "SELECT id FROM questions WHERE meeting = $1 AND author = $2 AND client_id = $3",
        meeting_id, author_id, client_id,
    )  # fmt: skip
    return await fetch_question(connection, meeting_id, question_id)


_VOTE = """
WITH question AS (
    SELECT q.id, q.status, q.votes, m.status AS meeting_status
    FROM questions q JOIN meetings m ON m.id = q.meeting
    WHERE q.id = $1 AND q.meeting = $2
), muted AS (
    SELECT 1 FROM mutes WHERE meeting = $2 AND "user" = $3
), allowed AS (
    SELECT id, status FROM question
    WHERE meeting_status NOT IN ('ended', 'cancelled') AND NOT EXISTS (SELECT 1 FROM muted)
), cast_vote AS (
    INSERT INTO votes (question, "user")
    SELECT id, $3 FROM allowed WHERE $4 AND status IN ('live', 'answered')
    ON CONFLICT DO NOTHING
    RETURNING question
), withdrawn AS (
    DELETE FROM votes
    WHERE NOT $4 AND question IN (SELECT id FROM allowed) AND "user" = $3
    RETURNING question
), counted AS (
    UPDATE questions SET votes = votes + CASE WHEN $4 THEN 1 ELSE -1 END
    WHERE id IN (SELECT id FROM allowed) AND EXISTS (SELECT 1 FROM cast_vote UNION ALL SELECT 1 FROM withdrawn)
    RETURNING votes
)
SELECT question.status, question.meeting_status, EXISTS (SELECT 1 FROM muted) AS muted,
       (SELECT votes FROM counted) AS new_votes
FROM question
"""
"""Every branch is keyed by the question *and* the meeting the frame was authorised for (`allowed`),
so a frame naming meeting A's room can never touch a vote of meeting B (PITFALLS 21)."""

_COMMITTED_VOTES = "SELECT votes FROM questions WHERE id = $1 AND meeting = $2"


async def vote(
    pool: asyncpg.Pool, meeting_id: uuid.UUID, question_id: uuid.UUID, user_id: uuid.UUID, up: bool
) -> tuple[int, bool]:
    """Cast or withdraw one user's vote; returns (votes, changed). Idempotent either way.

    One statement, so the question's row is locked only while it runs: hundreds of votes a
    second on one popular question do not queue behind each other's round trips. A vote that
    changed nothing reads the count again in a second statement: its first statement's snapshot
    predates a concurrent vote of the same user (from another tab or process) that it waited
    for, so only a fresh read reports the committed count (PITFALLS 22).
    """
    async with pool.acquire() as connection:
        row = await connection.fetchrow(_VOTE, question_id, meeting_id, user_id, up)
        if row is None:
            raise not_found()
        if row["meeting_status"] in CLOSED_MEETING:
            raise meeting_closed(row["meeting_status"], "votes")
        if row["muted"]:
            raise muted()
        if up and row["status"] not in PUBLIC_STATUSES:
            raise FrameError(ErrorCode.CONFLICT, f"a {row['status']} question cannot be voted on")
        if row["new_votes"] is not None:
            return row["new_votes"], True
        votes = await connection.fetchval(_COMMITTED_VOTES, question_id, meeting_id)
    if votes is None:  # deleted in between
        raise not_found()
    return votes, False


async def snapshot(
    pool: asyncpg.Pool, meeting_id: uuid.UUID, *, moderation: bool, viewer_id: uuid.UUID | None
) -> list[Row]:
    """Questions a room may see, pinned first, then by votes, then oldest first (at most SNAPSHOT_LIMIT).

    The moderation room sees every question; the public room sees live and answered ones, plus
    the viewer's own pending questions (so a reloaded page still shows "awaiting approval").
    """
    args: list[Any] = [meeting_id]
    if moderation:
        where = "q.meeting = $1"
    else:
        where = "q.meeting = $1 AND (q.status IN ('live', 'answered') OR (q.status = 'pending' AND q.author = $2))"
        args.append(viewer_id)
    async with pool.acquire() as connection:
        # hand-written: every join runs it, and through Piccolo it costs 1.2-1.9 ms more for 500 rows (measured)
        rows = await connection.fetch(
            f"""SELECT {QUESTION_COLUMNS} FROM questions q LEFT JOIN users u ON u.id = q.author WHERE {where}
                ORDER BY q.pinned DESC, q.votes DESC, q.created_at ASC, q.id ASC LIMIT {SNAPSHOT_LIMIT}""",
            *args,
        )
    return [dict(row) for row in rows]


async def my_votes(pool: asyncpg.Pool, meeting_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
    """The ids of the meeting's questions the user has upvoted (for the snapshot's `mine`)."""
    async with pool.acquire() as connection:
        # hand-written: every join runs it, and through Piccolo it costs 1.3-2.7 ms more for 100 votes (measured)
        rows = await connection.fetch(
            """SELECT v.question FROM votes v JOIN questions q ON q.id = v.question
               WHERE q.meeting = $1 AND v."user" = $2 ORDER BY v.created_at""",
            meeting_id, user_id,
        )  # fmt: skip
    return [str(row["question"]) for row in rows]


SIMILAR_CANDIDATES = 20
"""Nearest questions read from the trigram index per `similar`; the best 5 of them above the threshold are kept."""
SIMILAR_THRESHOLD = 0.3
"""pg_trgm's default similarity threshold: below it two texts are not "close"."""
SIMILAR_PROBE_CHARS = 300
"""Only the start of the probe text counts (a draft question rarely needs more to find its twin)."""
SIMILAR_TIMEOUT_S = 2.0

_SIMILAR = f"""WITH nearest AS (
    SELECT id, text, votes, similarity(text, $2) AS score FROM questions
    WHERE meeting = $1 AND status = ANY($3::text[])
    ORDER BY text <-> $2
    LIMIT {SIMILAR_CANDIDATES}
)
SELECT id, text, votes, score FROM nearest WHERE score >= {SIMILAR_THRESHOLD}
ORDER BY score DESC, votes DESC LIMIT 5"""


async def similar(pool: asyncpg.Pool, meeting_id: uuid.UUID, text: str, *, moderation: bool) -> list[Row]:
    """Up to 5 questions the room may see whose text is close to `text` by trigram similarity, best first.

    The candidates are the meeting's nearest questions by trigram distance, read from the GiST index
    on (meeting, text) that stops after SIMILAR_CANDIDATES rows: the cost no longer grows with the
    meeting's size (1.5 s on 3,000 long questions before, milliseconds now).
    """
    statuses = ["pending", "live", "answered"] if moderation else list(PUBLIC_STATUSES)
    async with pool.acquire() as connection:
        # hand-written: trigram distance and similarity (`<->`, `similarity`) are operators Piccolo has no words for
        rows = await connection.fetch(
            _SIMILAR, meeting_id, text[:SIMILAR_PROBE_CHARS], statuses, timeout=SIMILAR_TIMEOUT_S
        )
    return [dict(row) for row in rows]


EXPORT_PAGE = 500
"""Rows read per pooled-connection checkout while exporting."""
EXPORT_PAGE_TIMEOUT_S = 30


async def export_pages(meeting_id: uuid.UUID) -> AsyncIterator[list[Row]]:
    """Every question of a meeting, oldest first, in pages of EXPORT_PAGE rows.

    Each page borrows a pooled connection for one short statement and gives it back before the
    caller sends the page: a client that reads slowly (or never) holds no connection and no
    transaction (a server-side cursor did, and ten unread exports froze the whole pool; PITFALLS
    17). Pages follow (created_at, id), so rows are neither skipped nor repeated; a question
    changed during the export appears as it was when its page was read.
    """
    page = Question.select(*QUESTION_FIELDS).where(Question.meeting == meeting_id)
    while True:
        async with asyncio.timeout(EXPORT_PAGE_TIMEOUT_S):
            rows = await page.order_by(Question.created_at, Question.id).limit(EXPORT_PAGE)
        if not rows:
            return
        yield rows
        if len(rows) < EXPORT_PAGE:
            return
        created_at, last_id = rows[-1]["created_at"], rows[-1]["id"]
        # (created_at, id) > (last): the first term bounds the scan of the (meeting, created_at) index
        page = Question.select(*QUESTION_FIELDS).where(
            Question.meeting == meeting_id,
            Question.created_at >= created_at,
            (Question.created_at > created_at) | (Question.id > last_id),
        )
