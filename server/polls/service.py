"""Poll persistence: setup (REST), the live actions and answers (frames), results, snapshots, export.

Writes go through plain asyncpg on the process's pool. Invariants are database facts: at most one
open poll per meeting (a partial unique index), one answer per (poll, user). Changes to a
meeting's polls (setup and actions) run inside `in_order`, which the caller holds while it
commits *and publishes*, so every client sees them in commit order even when they arrive at
different server processes at once (two presenters opening two polls must not leave two open).
Answers do not take that lock: they are one statement each, and their results are published by
the coalescer (`server.polls.handlers`), which reads the totals after the answers committed.

Anonymity: an answer row keeps its user (one answer per user, `mine` after a reload), but no
query here hands the user of an anonymous poll's answer to anything but that user's own view.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from channels.protocol import ErrorCode, FrameError
from server.db import advisory_locked
from server.errors import conflict, not_found
from server.polls.frames import PollAnswer, PollResults
from server.polls.results import (
    PollDefinition,
    choice_results,
    empty_results,
    rating_results,
    word_cloud_results,
)
from server.polls.schemas import FROZEN_FIELDS, PollCreate, PollPatch
from server.qa.rules import qa_settings
from server.rest import clean_text, invalid

Row = dict[str, Any]

MAX_TITLE = 200
MAX_OPTION = 120
MIN_OPTIONS, MAX_OPTIONS = 2, 12

POLL_COLUMNS = """id, meeting, kind, title, options, multiple, scale_max, anonymous, show_results, status,
    position, created_at, opened_at, closed_at"""
ORDER = "ORDER BY position, created_at, id"


@dataclass(slots=True)
class Change:
    """A poll before and after one change (None where it did not or no longer exists), with its results after."""

    before: Row | None
    after: Row | None
    results: PollResults | None = field(default=None)


def _row(record: asyncpg.Record) -> Row:
    row = dict(record)
    if isinstance(row["options"], str | bytes):
        row["options"] = msgspec.json.decode(row["options"])
    return row


def definition(row: Row) -> PollDefinition:
    return PollDefinition(
        id=str(row["id"]),
        kind=row["kind"],
        option_ids=tuple(option["id"] for option in row["options"]),
        multiple=row["multiple"],
        scale_max=row["scale_max"],
    )


def in_order(pool: asyncpg.Pool, meeting_id: uuid.UUID) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection holding the meeting's poll lock: changes to its polls commit and publish one at a time."""
    return advisory_locked(pool, f"polls:{meeting_id}")


async def fetch_poll(connection: asyncpg.Connection, meeting_id: uuid.UUID, poll_id: uuid.UUID) -> Row | None:
    """The poll, if it belongs to `meeting_id` (an id from another meeting is no poll here)."""
    record = await connection.fetchrow(
        f"SELECT {POLL_COLUMNS} FROM polls WHERE id = $1 AND meeting = $2", poll_id, meeting_id
    )
    return None if record is None else _row(record)


async def blocked_words(connection: asyncpg.Connection, meeting_id: uuid.UUID) -> list[str]:
    raw = await connection.fetchval("SELECT settings FROM meetings WHERE id = $1", meeting_id)
    return qa_settings(raw).blocked_words if raw is not None else []


# --- results -------------------------------------------------------------------------------


async def results(connection: asyncpg.Connection, row: Row, blocked: list[str] | None = None) -> PollResults:
    """The poll's exact results now. `blocked` are the meeting's blocked words (read here when None)."""
    poll_id = row["id"]
    option_ids = [option["id"] for option in row["options"]]
    if row["kind"] == "rating":
        records = await connection.fetch(
            "SELECT value, count(*) AS n FROM poll_responses WHERE poll = $1 AND value IS NOT NULL GROUP BY value",
            poll_id,
        )
        return rating_results(row["scale_max"], {r["value"]: r["n"] for r in records})
    column = "option_ids" if row["kind"] == "choice" else "words"
    records = await connection.fetch(
        f"""SELECT NULL AS k, count(*) AS n FROM poll_responses WHERE poll = $1
            UNION ALL
            SELECT k, count(*) FROM poll_responses, unnest({column}) AS k WHERE poll = $1 GROUP BY k""",
        poll_id,
    )
    respondents = next((r["n"] for r in records if r["k"] is None), 0)
    counts = [(r["k"], r["n"]) for r in records if r["k"] is not None]
    if row["kind"] == "choice":
        return choice_results(option_ids, respondents, dict(counts))
    if blocked is None:
        blocked = await blocked_words(connection, row["meeting"])
    return word_cloud_results(respondents, counts, blocked)


async def with_results(connection: asyncpg.Connection, rows: list[Row]) -> list[tuple[Row, PollResults]]:
    blocked = await blocked_words(connection, rows[0]["meeting"]) if rows else []
    return [(row, await results(connection, row, blocked)) for row in rows]


# --- setup (REST) --------------------------------------------------------------------------


def _checked_options(kind: str, options: list[str] | None, previous: list[dict[str, str]]) -> list[dict[str, str]]:
    """Option texts as stored, with ids (an unchanged text keeps its id); 422 for anything docs/polls.md refuses."""
    if kind != "choice":
        if options:
            raise invalid("options", f"a {kind} poll has no options")
        return []
    if options is None or not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise invalid("options", f"a choice poll has {MIN_OPTIONS} to {MAX_OPTIONS} options")
    known = {option["text"].casefold(): option["id"] for option in previous}
    seen: set[str] = set()
    checked = []
    for index, raw in enumerate(options):
        text = clean_text(raw, f"options[{index}]", max_length=MAX_OPTION)
        folded = text.casefold()
        if folded in seen:
            raise invalid(f"options[{index}]", "option texts must be unique within the poll (ignoring case)")
        seen.add(folded)
        checked.append({"id": known.get(folded) or str(uuid.uuid4()), "text": text})
    return checked


def _check_kind_fields(kind: str, multiple: bool) -> None:
    if multiple and kind != "choice":
        raise invalid("multiple", "only a choice poll takes several options")


async def create(connection: asyncpg.Connection, meeting_id: uuid.UUID, body: PollCreate) -> Change:
    """A new draft poll, last in the meeting's list."""
    title = clean_text(body.title, "title", max_length=MAX_TITLE)
    _check_kind_fields(body.kind, body.multiple)
    options = _checked_options(body.kind, body.options, [])
    async with connection.transaction():
        record = await connection.fetchrow(
            f"""INSERT INTO polls (id, meeting, kind, title, options, multiple, scale_max, anonymous, show_results,
                                   position)
                VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9,
                        (SELECT coalesce(max(position) + 1, 0) FROM polls WHERE meeting = $2))
                RETURNING {POLL_COLUMNS}""",
            uuid.uuid4(), meeting_id, body.kind, title, msgspec.json.encode(options).decode(), body.multiple,
            body.scale_max, body.anonymous, body.show_results,
        )  # fmt: skip
    assert record is not None
    row = _row(record)
    return Change(None, row, empty_results(row["kind"], [o["id"] for o in options], row["scale_max"]))


async def update(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, poll_id: uuid.UUID, patch: PollPatch
) -> list[Change]:
    """Apply a PATCH; every poll whose fields or place changed, this one first. 409 for setup of an opened poll."""
    async with connection.transaction():
        before = await fetch_poll(connection, meeting_id, poll_id)
        if before is None:
            raise not_found("no such poll in this meeting")
        frozen = [name for name in FROZEN_FIELDS if getattr(patch, name) is not msgspec.UNSET]
        if frozen and before["opened_at"] is not None:
            raise conflict(f"the poll was opened, so only show_results and position may change ({frozen[0]} given)")
        kind = before["kind"] if patch.kind is msgspec.UNSET else patch.kind
        title = before["title"] if patch.title is msgspec.UNSET else clean_text(patch.title, "title", max_length=200)
        multiple = before["multiple"] if patch.multiple is msgspec.UNSET else patch.multiple
        if kind != "choice" and patch.multiple is msgspec.UNSET:
            multiple = False
        _check_kind_fields(kind, multiple)
        if patch.options is msgspec.UNSET:
            texts = [option["text"] for option in before["options"]] if kind == "choice" else None
        else:
            texts = patch.options
        options = _checked_options(kind, texts, before["options"])
        scale_max = before["scale_max"] if patch.scale_max is msgspec.UNSET else patch.scale_max
        anonymous = before["anonymous"] if patch.anonymous is msgspec.UNSET else patch.anonymous
        show = before["show_results"] if patch.show_results is msgspec.UNSET else patch.show_results
        record = await connection.fetchrow(
            f"""UPDATE polls SET kind = $2, title = $3, options = $4::jsonb, multiple = $5, scale_max = $6,
                    anonymous = $7, show_results = $8, updated_at = now()
                WHERE id = $1 RETURNING {POLL_COLUMNS}""",
            poll_id, kind, title, msgspec.json.encode(options).decode(), multiple, scale_max, anonymous, show,
        )  # fmt: skip
        assert record is not None
        changes = [Change(before, _row(record))]
        if patch.position is not msgspec.UNSET:
            changes = await _move(connection, meeting_id, poll_id, patch.position, changes)
        blocked = await blocked_words(connection, meeting_id)
        for change in changes:
            assert change.after is not None
            change.results = await results(connection, change.after, blocked)
        return changes


async def _move(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, poll_id: uuid.UUID, position: int, changes: list[Change]
) -> list[Change]:
    """Put the poll at `position` (0-based; past the end: last) and number the meeting's polls 0, 1, 2..."""
    rows = [
        _row(r)
        for r in await connection.fetch(f"SELECT {POLL_COLUMNS} FROM polls WHERE meeting = $1 {ORDER}", meeting_id)
    ]
    order = [row for row in rows if row["id"] != poll_id]
    moving = next(row for row in rows if row["id"] == poll_id)
    order.insert(min(position, len(order)), moving)
    by_id = {change.after["id"]: change for change in changes if change.after is not None}
    for index, row in enumerate(order):
        if row["position"] == index:
            continue
        record = await connection.fetchrow(
            f"UPDATE polls SET position = $2, updated_at = now() WHERE id = $1 RETURNING {POLL_COLUMNS}",
            row["id"],
            index,
        )
        assert record is not None
        if row["id"] in by_id:
            by_id[row["id"]].after = _row(record)
        else:
            changes.append(Change(row, _row(record)))
    return changes


async def delete(connection: asyncpg.Connection, meeting_id: uuid.UUID, poll_id: uuid.UUID) -> Change:
    """Delete the poll and its answers (the foreign key cascades)."""
    async with connection.transaction():
        before = await fetch_poll(connection, meeting_id, poll_id)
        if before is None:
            raise not_found("no such poll in this meeting")
        await connection.execute("DELETE FROM polls WHERE id = $1", poll_id)
    return Change(before, None)


async def list_polls(connection: asyncpg.Connection, meeting_id: uuid.UUID, *, drafts: bool) -> list[Row]:
    where = "meeting = $1" if drafts else "meeting = $1 AND status <> 'draft'"
    records = await connection.fetch(f"SELECT {POLL_COLUMNS} FROM polls WHERE {where} {ORDER}", meeting_id)
    return [_row(record) for record in records]


# --- running live (frames) -----------------------------------------------------------------


def _frame_not_found() -> FrameError:
    return FrameError(ErrorCode.NOT_FOUND, "no such poll in this meeting")


async def act(connection: asyncpg.Connection, meeting_id: uuid.UUID, poll_id: uuid.UUID, action: str) -> list[Change]:
    """`open` (closing the meeting's other open poll first), `close` or `reset`; every poll it changed, in order."""
    async with connection.transaction():
        before = await fetch_poll(connection, meeting_id, poll_id)
        if before is None:
            raise _frame_not_found()
        status = before["status"]
        changes: list[Change] = []
        if action == "open":
            if status == "open":
                raise FrameError(ErrorCode.CONFLICT, "the poll is already open")
            meeting_status = await connection.fetchval("SELECT status FROM meetings WHERE id = $1", meeting_id)
            if meeting_status in ("ended", "cancelled"):
                raise FrameError(ErrorCode.CONFLICT, f"the meeting has {meeting_status}; no poll can be opened")
            other = await connection.fetchrow(
                f"SELECT {POLL_COLUMNS} FROM polls WHERE meeting = $1 AND status = 'open' FOR UPDATE", meeting_id
            )
            if other is not None:
                changes.append(Change(_row(other), await _set(connection, other["id"], _CLOSE)))
            after = await _set(connection, poll_id, "status = 'open', opened_at = now(), closed_at = NULL")
        elif action == "close":
            if status != "open":
                raise FrameError(ErrorCode.CONFLICT, f"only an open poll can be closed; this one is {status}")
            after = await _set(connection, poll_id, _CLOSE)
        elif action == "reset":
            if status != "closed":
                raise FrameError(ErrorCode.CONFLICT, f"only a closed poll can be reset; this one is {status}")
            await connection.execute("DELETE FROM poll_responses WHERE poll = $1", poll_id)
            after = await _set(connection, poll_id, "status = status")
        else:  # the frame's Literal type makes this unreachable from the wire
            raise FrameError(ErrorCode.BAD_REQUEST, f"unknown action {action!r}")
        changes.append(Change(before, after))
        blocked = await blocked_words(connection, meeting_id)
        for change in changes:
            assert change.after is not None
            change.results = await results(connection, change.after, blocked)
        return changes


_CLOSE = "status = 'closed', closed_at = now()"


async def _set(connection: asyncpg.Connection, poll_id: uuid.UUID, assignments: str) -> Row:
    record = await connection.fetchrow(
        f"UPDATE polls SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {POLL_COLUMNS}", poll_id
    )
    assert record is not None
    return _row(record)


async def load_definition(pool: asyncpg.Pool, meeting_id: uuid.UUID, poll_id: uuid.UUID) -> tuple[PollDefinition, bool]:
    """What answers to the poll are checked against, and whether it is frozen (was opened: safe to cache)."""
    async with pool.acquire() as connection:
        row = await fetch_poll(connection, meeting_id, poll_id)
    if row is None:
        raise _frame_not_found()
    return definition(row), row["opened_at"] is not None


_RESPOND = """
WITH poll AS (SELECT id FROM polls WHERE id = $1 AND meeting = $2 AND status = 'open')
INSERT INTO poll_responses (poll, "user", option_ids, value, words)
SELECT id, $3, $4, $5, $6 FROM poll
ON CONFLICT (poll, "user") DO UPDATE
    SET option_ids = EXCLUDED.option_ids, value = EXCLUDED.value, words = EXCLUDED.words, updated_at = now()
RETURNING 1
"""


async def respond(
    pool: asyncpg.Pool, meeting_id: uuid.UUID, poll_id: uuid.UUID, user_id: uuid.UUID, answer: PollAnswer
) -> None:
    """Store the user's answer (replacing their earlier one) while the poll is open; conflict if it is not."""
    option_ids = answer.option_ids if answer.option_ids is not msgspec.UNSET else []
    value = answer.value if answer.value is not msgspec.UNSET else None
    words = answer.words if answer.words is not msgspec.UNSET else []
    async with pool.acquire() as connection:
        stored = await connection.fetchval(_RESPOND, poll_id, meeting_id, user_id, option_ids, value, words)
        if stored is not None:
            return
        status = await connection.fetchval(
            "SELECT status FROM polls WHERE id = $1 AND meeting = $2", poll_id, meeting_id
        )
    if status is None:
        raise _frame_not_found()
    raise FrameError(ErrorCode.CONFLICT, f"the poll is {status}; answers are taken only while it is open")


# --- snapshots and export ------------------------------------------------------------------


def answer_of(kind: str, option_ids: list[str], value: int | None, words: list[str]) -> PollAnswer:
    if kind == "choice":
        return PollAnswer(option_ids=list(option_ids))
    if kind == "rating":
        return PollAnswer(value=value if value is not None else msgspec.UNSET)
    return PollAnswer(words=list(words))


async def my_answers(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, user_id: uuid.UUID
) -> dict[str, PollAnswer]:
    """The user's own answers to the meeting's polls that participants may see, by poll id."""
    records = await connection.fetch(
        """SELECT p.id, p.kind, r.option_ids, r.value, r.words FROM poll_responses r JOIN polls p ON p.id = r.poll
           WHERE p.meeting = $1 AND r."user" = $2 AND p.status <> 'draft'""",
        meeting_id,
        user_id,
    )
    return {str(r["id"]): answer_of(r["kind"], r["option_ids"], r["value"], r["words"]) for r in records}


EXPORT_PAGE = 500
"""Answers read per pooled-connection checkout while exporting."""

_EXPORT_POLLS = """SELECT id AS poll_id, title, kind, options, anonymous FROM polls WHERE meeting = $1
ORDER BY position, created_at, id"""

# The respondent is joined only when the poll is not anonymous ($2): for anonymous polls the
# statement never reads who answered.
_EXPORT_ANSWERS = f"""SELECT r.id, r.option_ids, r.value, r.words, r.updated_at, u.display_name AS respondent
FROM poll_responses r LEFT JOIN users u ON u.id = r."user" AND NOT $2::bool
WHERE r.poll = $1 AND ($3::timestamptz IS NULL OR (r.updated_at, r.id) > ($3::timestamptz, $4::uuid))
ORDER BY r.updated_at, r.id LIMIT {EXPORT_PAGE}"""


async def export_rows(pool: asyncpg.Pool, meeting_id: uuid.UUID) -> AsyncIterator[Row]:
    """Every answer of a meeting's polls, poll by poll, oldest answer first.

    Like the questions export, each page borrows a pooled connection for one short statement and
    gives it back before the rows are sent, so a client that reads slowly (or never) holds no
    connection and no transaction (PITFALLS 17). Answers are ordered by time, never by user.
    """
    async with pool.acquire() as connection:
        polls = [_row(record) for record in await connection.fetch(_EXPORT_POLLS, meeting_id, timeout=30)]
    for poll in polls:
        after: tuple[Any, Any] = (None, None)
        while True:
            async with pool.acquire() as connection:
                answers = await connection.fetch(
                    _EXPORT_ANSWERS, poll["poll_id"], poll["anonymous"], *after, timeout=30
                )
            for answer in answers:
                yield {**poll, **dict(answer)}
            if len(answers) < EXPORT_PAGE:
                break
            after = (answers[-1]["updated_at"], answers[-1]["id"])
