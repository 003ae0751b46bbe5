"""Q&A persistence: one transaction per action, returning what changed so the caller can publish it.

Writes go through plain asyncpg on the process's pool (these are the hot paths). Invariants are
database facts: one pinned question per meeting (partial unique index), one question per
(meeting, author, client_id), one vote per (question, user). Changes to a meeting's existing
questions run inside `in_order`, so they commit and publish one at a time per meeting.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg

from channels.protocol import ErrorCode, FrameError
from server.db import advisory_locked
from server.meetings.schemas import MeetingSettings
from server.qa.rules import blocked_words_in, clean_text, qa_settings

Row = dict[str, Any]

QUESTION_COLUMNS = """q.id, q.meeting, q.author, u.display_name AS author_name, q.text, q.status, q.pinned,
    q.votes, q.anonymous, q.answer, q.flagged, q.flagged_words, q.dismiss_reason, q.merged_into,
    q.client_id, q.created_at, q.updated_at, q.answered_at"""

SELECT_QUESTION = f"SELECT {QUESTION_COLUMNS} FROM questions q LEFT JOIN users u ON u.id = q.author WHERE q.id = $1"

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
    """
    return advisory_locked(pool, f"qa:{meeting_id}")


def not_found(what: str = "question") -> FrameError:
    return FrameError(ErrorCode.NOT_FOUND, f"no such {what} in this meeting")


async def meeting_info(connection: asyncpg.Connection, meeting_id: uuid.UUID) -> MeetingInfo:
    row = await connection.fetchrow("SELECT id, status, settings FROM meetings WHERE id = $1", meeting_id)
    if row is None:
        raise not_found("meeting")
    return MeetingInfo(row["id"], row["status"], qa_settings(row["settings"]))


async def fetch_question(connection: asyncpg.Connection, meeting_id: uuid.UUID, question_id: uuid.UUID) -> Row:
    row = await connection.fetchrow(SELECT_QUESTION, question_id)
    if row is None or row["meeting"] != meeting_id:
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
    these, it is open and the asker is not muted. Otherwise nothing is stored and the ask starts
    again from a fresh read, so a settings change applies to the very next ask, as without them,
    and nothing has to invalidate them.
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
        if contexts is not None and known is not None and known[0] not in CLOSED_MEETING:
            _, stored, settings = known
            question = _new_question(meeting_id, author_id, text, anonymous, client_id, settings)
            if admit is not None:
                await admit()
            row = await connection.fetchrow(_ASK, *question, stored)
            if row is not None and row["id"] is not None:
                return {k: v for k, v in row.items() if k not in _ASK_STATE}, True
            unchanged = row is not None and row["settings_unchanged"] and not row["asker_muted"]
            if unchanged and row["meeting_status"] not in CLOSED_MEETING:  # then only a repeated client_id
                return await _asked_before(connection, meeting_id, author_id, client_id), False
            contexts.drop(meeting_id)  # changed: the rules are checked again against what is stored now
            if refund is not None:
                await refund()
        context = await connection.fetchrow(_ASK_CONTEXT, meeting_id, author_id)
        if context is None:
            raise not_found("meeting")
        meeting_status = context["status"]
        if contexts is not None:
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


Arguments = tuple[Any, ...]


async def _no_step(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    return []


async def _unpin_others(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    """At most one pinned question per meeting: pinning one unpins the other first."""
    changes = []
    for other in await connection.fetch("SELECT id FROM questions WHERE meeting = $1 AND pinned", meeting_id):
        other_before = await fetch_question(connection, meeting_id, other["id"])
        await _update(connection, meeting_id, other["id"], "pinned = false")
        changes.append(Change(other_before, await fetch_question(connection, meeting_id, other["id"])))
    return changes


def _authorless(before: Row) -> str | None:
    """Nobody to mute: the author deleted their account (the question stays, with no author)."""
    return "the author of this question deleted their account" if before["author"] is None else None


async def _mute(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    statement = 'INSERT INTO mutes (meeting, "user") VALUES ($1, $2) ON CONFLICT DO NOTHING'
    await connection.execute(statement, meeting_id, before["author"])
    return []


async def _unmute(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    await connection.execute('DELETE FROM mutes WHERE meeting = $1 AND "user" = $2', meeting_id, before["author"])
    return []


def _answer_text(text: str | None, reason: str | None) -> Arguments:
    answer = text.strip() if text else None
    if answer is not None and len(answer) > 5000:
        raise FrameError(ErrorCode.BAD_REQUEST, "the answer is over 5000 characters")
    return (answer or None,)


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One `moderate` action: from which statuses, what it writes, and its extra steps."""

    from_statuses: frozenset[str] | None = None
    """The statuses the action applies to (None: any); others are refused with `conflict`."""
    refusal: str = ""
    """The `conflict` message, `{status}` filled in."""
    assignments: str | None = None
    """The question's UPDATE (`$2`... from `arguments`); None: the question row does not change."""
    arguments: Callable[[str | None, str | None], Arguments] = lambda text, reason: ()
    """`(text, reason)` of the frame -> the UPDATE's arguments after the id (may refuse the input)."""
    unchanged_if: Callable[[Row], bool] = lambda before: False
    """Already so: nothing to write, nothing to publish."""
    refuse_if: Callable[[Row], str | None] = lambda before: None
    """A further refusal (`conflict`) that depends on more than the status."""
    step: Callable[[asyncpg.Connection, uuid.UUID, Row], Awaitable[list[Change]]] = _no_step
    """Runs before the question's UPDATE, in the same transaction; returns other questions it changed."""


TRANSITIONS: dict[str, Transition] = {
    "approve": Transition(
        from_statuses=frozenset({"pending"}),
        refusal="only pending questions can be approved; this one is {status}",
        assignments="status = 'live'",
    ),
    "dismiss": Transition(
        from_statuses=frozenset({"pending", "live", "answered"}),
        refusal="the question is already dismissed",
        assignments="status = 'dismissed', pinned = false, dismiss_reason = $2",
        arguments=lambda text, reason: (reason,),
    ),
    "pin": Transition(
        from_statuses=frozenset(PUBLIC_STATUSES),
        refusal="a {status} question cannot be pinned",
        assignments="pinned = true",
        unchanged_if=lambda before: bool(before["pinned"]),
        step=_unpin_others,
    ),
    "unpin": Transition(assignments="pinned = false", unchanged_if=lambda before: not before["pinned"]),
    "answer": Transition(
        from_statuses=frozenset({"live", "answered", "pending"}),
        refusal="a {status} question cannot be answered",
        assignments="status = 'answered', answer = $2, answered_at = coalesce(answered_at, now())",
        arguments=_answer_text,
    ),
    "reopen": Transition(
        from_statuses=frozenset({"answered", "dismissed"}),
        refusal="only answered or dismissed questions can be reopened; this one is {status}",
        assignments="status = 'live', dismiss_reason = NULL, answered_at = NULL",
        refuse_if=lambda before: "a merged question cannot be reopened" if before["merged_into"] is not None else None,
    ),
    "mute_author": Transition(step=_mute, refuse_if=_authorless),
    "unmute_author": Transition(step=_unmute, refuse_if=_authorless),
}
"""`moderate` as a table: every action the frame's `ModerateAction` allows, and nothing else."""


async def moderate(
    connection: asyncpg.Connection,
    meeting_id: uuid.UUID,
    question_id: uuid.UUID,
    action: str,
    *,
    text: str | None = None,
    reason: str | None = None,
) -> list[Change]:
    """Apply one moderation action (`TRANSITIONS`); returns every question it changed (pinning can change two)."""
    transition = TRANSITIONS.get(action)
    if transition is None:  # the frame's Literal type makes this unreachable from the wire
        raise FrameError(ErrorCode.BAD_REQUEST, f"unknown action {action!r}")
    arguments = transition.arguments(text, reason)
    async with connection.transaction():
        await meeting_info(connection, meeting_id)
        before = await fetch_question(connection, meeting_id, question_id)
        status = before["status"]
        if transition.from_statuses is not None and status not in transition.from_statuses:
            raise FrameError(ErrorCode.CONFLICT, transition.refusal.format(status=status))
        refusal = transition.refuse_if(before)
        if refusal is not None:
            raise FrameError(ErrorCode.CONFLICT, refusal)
        if transition.unchanged_if(before):
            return []
        changes = await transition.step(connection, meeting_id, before)
        if transition.assignments is None:
            return changes
        await _update(connection, meeting_id, question_id, transition.assignments, *arguments)
        changes.append(Change(before, await fetch_question(connection, meeting_id, question_id)))
        return changes


async def _update(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, question_id: uuid.UUID, assignments: str, *args: Any
) -> None:
    """`assignments` use $2.. for `args`; the row must also be in `meeting_id`, the meeting the frame named."""
    meeting_param = f"${len(args) + 2}"
    await connection.execute(
        f"UPDATE questions SET {assignments}, updated_at = now() WHERE id = $1 AND meeting = {meeting_param}",
        question_id,
        *args,
        meeting_id,
    )


async def edit(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, question_id: uuid.UUID, user_id: uuid.UUID, text: str
) -> Change:
    """The author rewrites their question while it is not answered (or dismissed); blocked words are checked again."""
    async with connection.transaction():
        meeting = await meeting_info(connection, meeting_id)
        if meeting.status in CLOSED_MEETING:
            raise meeting_closed(meeting.status, "edits")
        before = await fetch_question(connection, meeting_id, question_id)
        if before["author"] != user_id:
            raise FrameError(ErrorCode.FORBIDDEN, "only the author can edit a question")
        if before["status"] in ("answered", "dismissed"):
            raise FrameError(ErrorCode.CONFLICT, f"a {before['status']} question cannot be edited")
        text = clean_text(text, meeting.settings.max_question_length)
        flagged_words = blocked_words_in(text, meeting.settings.blocked_words)
        if flagged_words:
            await _update(
                connection,
                meeting_id,
                question_id,
                "text = $2, status = 'pending', pinned = false, flagged = true, flagged_words = $3",
                text,
                flagged_words,
            )
        else:
            await _update(connection, meeting_id, question_id, "text = $2", text)
        return Change(before, await fetch_question(connection, meeting_id, question_id))


async def delete(
    connection: asyncpg.Connection,
    meeting_id: uuid.UUID,
    question_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    moderator: bool,
) -> Change:
    async with connection.transaction():
        before = await fetch_question(connection, meeting_id, question_id)
        if not moderator and before["author"] != user_id:
            raise FrameError(ErrorCode.FORBIDDEN, "only the author, the owner or a presenter can delete a question")
        await connection.execute("DELETE FROM questions WHERE id = $1 AND meeting = $2", question_id, meeting_id)
        return Change(before, None)


async def merge(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, question_id: uuid.UUID, into_id: uuid.UUID
) -> list[Change]:
    """Dismiss `question_id` as a duplicate of `into_id`; its voters and author become voters of the target."""
    if question_id == into_id:
        raise FrameError(ErrorCode.BAD_REQUEST, "a question cannot be merged into itself")
    async with connection.transaction():
        await meeting_info(connection, meeting_id)
        source = await fetch_question(connection, meeting_id, question_id)
        try:
            target = await fetch_question(connection, meeting_id, into_id)
        except FrameError:
            raise FrameError(ErrorCode.NOT_FOUND, "no such target question in this meeting") from None
        if source["merged_into"] is not None:
            raise FrameError(ErrorCode.CONFLICT, "the question is already merged")
        if target["merged_into"] is not None or target["status"] == "dismissed":
            raise FrameError(ErrorCode.CONFLICT, "cannot merge into a merged or dismissed question")
        await connection.execute(
            """INSERT INTO votes (question, "user")
               SELECT $2::uuid, "user" FROM votes WHERE question = $1
               UNION SELECT $2::uuid, $3::uuid WHERE $3::uuid IS NOT NULL
               ON CONFLICT DO NOTHING""",
            question_id, into_id, source["author"],
        )  # fmt: skip
        await _update(connection, meeting_id, into_id, "votes = (SELECT count(*) FROM votes WHERE question = $1)")
        await _update(connection, meeting_id, question_id,
            "status = 'dismissed', pinned = false, dismiss_reason = 'duplicate', merged_into = $2", into_id,
        )  # fmt: skip
        return [
            Change(source, await fetch_question(connection, meeting_id, question_id), merged_into=into_id),
            Change(target, await fetch_question(connection, meeting_id, into_id)),
        ]


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
        rows = await connection.fetch(
            f"""SELECT {QUESTION_COLUMNS} FROM questions q LEFT JOIN users u ON u.id = q.author WHERE {where}
                ORDER BY q.pinned DESC, q.votes DESC, q.created_at ASC, q.id ASC LIMIT {SNAPSHOT_LIMIT}""",
            *args,
        )
    return [dict(row) for row in rows]


async def my_votes(pool: asyncpg.Pool, meeting_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
    """The ids of the meeting's questions the user has upvoted (for the snapshot's `mine`)."""
    async with pool.acquire() as connection:
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
        rows = await connection.fetch(
            _SIMILAR, meeting_id, text[:SIMILAR_PROBE_CHARS], statuses, timeout=SIMILAR_TIMEOUT_S
        )
    return [dict(row) for row in rows]


EXPORT_PAGE = 500
"""Rows read per pooled-connection checkout while exporting."""

_EXPORT_PAGE = f"""SELECT {QUESTION_COLUMNS} FROM questions q LEFT JOIN users u ON u.id = q.author
WHERE q.meeting = $1 AND ($2::timestamptz IS NULL OR (q.created_at, q.id) > ($2::timestamptz, $3::uuid))
ORDER BY q.created_at, q.id LIMIT {EXPORT_PAGE}"""


async def export_pages(pool: asyncpg.Pool, meeting_id: uuid.UUID) -> AsyncIterator[list[Row]]:
    """Every question of a meeting, oldest first, in pages of EXPORT_PAGE rows.

    Each page borrows a pooled connection for one short statement and gives it back before the
    caller sends the page: a client that reads slowly (or never) holds no connection and no
    transaction (a server-side cursor did, and ten unread exports froze the whole pool; PITFALLS
    17). Pages follow (created_at, id), so rows are neither skipped nor repeated; a question
    changed during the export appears as it was when its page was read.
    """
    after: tuple[Any, Any] = (None, None)
    while True:
        async with pool.acquire() as connection:
            rows = await connection.fetch(_EXPORT_PAGE, meeting_id, *after, timeout=30)
        if not rows:
            return
        yield [dict(row) for row in rows]
        if len(rows) < EXPORT_PAGE:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])
