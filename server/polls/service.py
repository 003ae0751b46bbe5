"""Poll persistence: setup (REST), the live actions and answers (frames), results, snapshots, export.

Rows are read and written through the Piccolo tables (`server.polls.tables`). A few statements are
written by hand, each marked with why: the poll lock (an advisory lock), the answer (one statement
that stores it only while the poll is open), the results (`unnest` of the answers' arrays) and the
reads every join of a meeting room makes (`list_polls`, `my_answers`, `blocked_words`: measured,
Piccolo's query building costs several times the statement's own client CPU there). They run through
`Table.raw`, so inside a Piccolo transaction they use its connection like every other query.

Invariants are database facts: at most one open poll per meeting (a partial unique index), one
answer per (poll, user). Changes to a meeting's polls (setup and actions) run inside `in_order`,
which the caller holds while it commits *and publishes*, so every client sees them in commit order
even when they arrive at different server processes at once (two presenters opening two polls must
not leave two open). Answers do not take that lock: they are one statement each, and their results
are published by the coalescer (`server.polls.handlers`), which reads the totals after the answers
committed.

Anonymity: an answer row keeps its user (one answer per user, `mine` after a reload), but no
query here hands the user of an anonymous poll's answer to anything but that user's own view.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from piccolo.columns import Column
from piccolo.query.functions.aggregate import Max

from channels.protocol import ErrorCode, FrameError
from server.db import NOW, Database
from server.errors import conflict, not_found
from server.meetings.tables import Meeting
from server.polls.frames import PollAnswer, PollResults
from server.polls.results import (
    PollDefinition,
    choice_results,
    empty_results,
    rating_results,
    word_cloud_results,
)
from server.polls.schemas import FROZEN_FIELDS, PollCreate, PollPatch
from server.polls.tables import Poll, PollResponse
from server.qa.rules import qa_settings
from server.rest import clean_text, invalid

Row = dict[str, Any]

MAX_TITLE = 200
MAX_OPTION = 120
MIN_OPTIONS, MAX_OPTIONS = 2, 12

POLL_COLUMNS: tuple[Column, ...] = (
    Poll.id, Poll.meeting, Poll.kind, Poll.title, Poll.options, Poll.multiple, Poll.scale_max, Poll.anonymous,
    Poll.show_results, Poll.status, Poll.position, Poll.created_at, Poll.opened_at, Poll.closed_at,
)  # fmt: skip
"""What a poll's row holds for events, views and results."""
ORDER = (Poll.position, Poll.created_at, Poll.id)
_COLUMN_NAMES = ", ".join(f'"{column._meta.db_column_name}"' for column in POLL_COLUMNS)
"""POLL_COLUMNS for the hand-written reads."""


@dataclass(slots=True)
class Change:
    """A poll before and after one change (None where it did not or no longer exists), with its results after."""

    before: Row | None
    after: Row | None
    results: PollResults | None = field(default=None)


def _row(record: Row) -> Row:
    """A poll row with its options decoded (Piccolo returns JSONB as text unless a select loads it)."""
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


Commit = Callable[[], Awaitable[None]]


@asynccontextmanager
async def in_order(db: Database, meeting_id: uuid.UUID) -> AsyncIterator[Commit]:
    """One Piccolo transaction holding the meeting's poll lock; yields `commit`.

    The block makes its changes (every Piccolo query in it runs in this transaction), awaits
    `commit()`, then publishes. The lock is a session lock, so it outlives the commit: changes to
    a meeting's polls commit *and publish* one at a time. A block that raises before `commit()` is
    rolled back; the lock goes when the connection returns to the pool (asyncpg's reset runs
    `pg_advisory_unlock_all()`), so a cancelled caller cannot leave it held.
    """
    committed = False
    failure: BaseException | None = None
    async with db.engine.transaction() as transaction:
        # hand SQL: an advisory lock, which Piccolo has no query for
        await Poll.raw("SELECT pg_advisory_lock(hashtextextended({}, 0))", f"polls:{meeting_id}")

        async def commit() -> None:
            nonlocal committed
            await transaction.commit()  # type: ignore[no-untyped-call]  # Piccolo leaves it unannotated
            committed = True

        try:
            yield commit
        except BaseException as err:
            if not committed:
                raise
            failure = err  # raised after the block: Piccolo would try to roll back a committed transaction
    if failure is not None:
        raise failure


async def fetch_poll(meeting_id: uuid.UUID, poll_id: uuid.UUID) -> Row | None:
    """The poll, if it belongs to `meeting_id` (an id from another meeting is no poll here)."""
    where = (Poll.id == poll_id) & (Poll.meeting == meeting_id)
    row: Row | None = await Poll.select(*POLL_COLUMNS).where(where).first().output(load_json=True)
    return row


async def blocked_words(meeting_id: uuid.UUID) -> list[str]:
    # hand SQL: read on every join of a meeting room with polls (see the module docstring)
    rows = await Poll.raw("SELECT settings FROM meetings WHERE id = {}", meeting_id)
    return qa_settings(rows[0]["settings"]).blocked_words if rows else []


# --- results -------------------------------------------------------------------------------


async def results(row: Row, blocked: list[str] | None = None) -> PollResults:
    """The poll's exact results now. `blocked` are the meeting's blocked words (read here when None)."""
    poll_id = row["id"]
    option_ids = [option["id"] for option in row["options"]]
    if row["kind"] == "rating":
        # hand SQL, as the next statement: on every join and every coalesced results event
        records = await PollResponse.raw(
            "SELECT value, count(*) AS n FROM poll_responses WHERE poll = {} AND value IS NOT NULL GROUP BY value",
            poll_id,
        )
        return rating_results(row["scale_max"], {r["value"]: r["n"] for r in records})
    column = "option_ids" if row["kind"] == "choice" else "words"
    # hand SQL: counts over `unnest` of an array column, which Piccolo cannot select from
    records = await PollResponse.raw(
        f"""SELECT NULL AS k, count(*) AS n FROM poll_responses WHERE poll = {{}}
            UNION ALL
            SELECT k, count(*) FROM poll_responses, unnest({column}) AS k WHERE poll = {{}} GROUP BY k""",
        poll_id,
        poll_id,
    )
    respondents = next((r["n"] for r in records if r["k"] is None), 0)
    counts = [(r["k"], r["n"]) for r in records if r["k"] is not None]
    if row["kind"] == "choice":
        return choice_results(option_ids, respondents, dict(counts))
    if blocked is None:
        blocked = await blocked_words(row["meeting"])
    return word_cloud_results(respondents, counts, blocked)


async def with_results(rows: list[Row]) -> list[tuple[Row, PollResults]]:
    blocked = await blocked_words(rows[0]["meeting"]) if rows else []
    return [(row, await results(row, blocked)) for row in rows]


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


async def create(meeting_id: uuid.UUID, body: PollCreate) -> Change:
    """A new draft poll, last in the meeting's list. Runs in the caller's `in_order` transaction."""
    title = clean_text(body.title, "title", max_length=MAX_TITLE)
    _check_kind_fields(body.kind, body.multiple)
    options = _checked_options(body.kind, body.options, [])
    last = await Poll.select(Max(Poll.position, alias="last")).where(Poll.meeting == meeting_id).first()
    position = 0 if last is None or last["last"] is None else last["last"] + 1
    poll = Poll(
        id=uuid.uuid4(),
        meeting=meeting_id,
        kind=body.kind,
        title=title,
        options=msgspec.json.encode(options).decode(),
        multiple=body.multiple,
        scale_max=body.scale_max,
        anonymous=body.anonymous,
        show_results=body.show_results,
        position=position,
    )
    inserted = await Poll.insert(poll).returning(*POLL_COLUMNS)
    row = _row(inserted[0])
    return Change(None, row, empty_results(row["kind"], [o["id"] for o in options], row["scale_max"]))


async def update(meeting_id: uuid.UUID, poll_id: uuid.UUID, patch: PollPatch) -> list[Change]:
    """Apply a PATCH; every poll whose fields or place changed, this one first. 409 for setup of an opened poll.

    Runs in the caller's `in_order` transaction.
    """
    before = await fetch_poll(meeting_id, poll_id)
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
    after = await _set(
        poll_id,
        {
            Poll.kind: kind,
            Poll.title: title,
            Poll.options: msgspec.json.encode(options).decode(),
            Poll.multiple: multiple,
            Poll.scale_max: before["scale_max"] if patch.scale_max is msgspec.UNSET else patch.scale_max,
            Poll.anonymous: before["anonymous"] if patch.anonymous is msgspec.UNSET else patch.anonymous,
            Poll.show_results: before["show_results"] if patch.show_results is msgspec.UNSET else patch.show_results,
        },
    )
    changes = [Change(before, after)]
    if patch.position is not msgspec.UNSET:
        changes = await _move(meeting_id, poll_id, patch.position, changes)
    blocked = await blocked_words(meeting_id)
    for change in changes:
        assert change.after is not None
        change.results = await results(change.after, blocked)
    return changes


async def _move(meeting_id: uuid.UUID, poll_id: uuid.UUID, position: int, changes: list[Change]) -> list[Change]:
    """Put the poll at `position` (0-based; past the end: last) and number the meeting's polls 0, 1, 2..."""
    rows = await Poll.select(*POLL_COLUMNS).where(Poll.meeting == meeting_id).order_by(*ORDER).output(load_json=True)
    order = [row for row in rows if row["id"] != poll_id]
    moving = next(row for row in rows if row["id"] == poll_id)
    order.insert(min(position, len(order)), moving)
    by_id = {change.after["id"]: change for change in changes if change.after is not None}
    for index, row in enumerate(order):
        if row["position"] == index:
            continue
        after = await _set(row["id"], {Poll.position: index})
        if row["id"] in by_id:
            by_id[row["id"]].after = after
        else:
            changes.append(Change(row, after))
    return changes


async def delete(meeting_id: uuid.UUID, poll_id: uuid.UUID) -> Change:
    """Delete the poll and its answers (the foreign key cascades). Runs in the caller's `in_order` transaction."""
    before = await fetch_poll(meeting_id, poll_id)
    if before is None:
        raise not_found("no such poll in this meeting")
    await Poll.delete().where(Poll.id == poll_id)
    return Change(before, None)


async def list_polls(meeting_id: uuid.UUID, *, drafts: bool) -> list[Row]:
    """The meeting's polls by position (without drafts unless `drafts`)."""
    where = "meeting = {}" if drafts else "meeting = {} AND status <> 'draft'"
    # hand SQL: read on every join of a meeting room (see the module docstring)
    records = await Poll.raw(
        f"SELECT {_COLUMN_NAMES} FROM polls WHERE {where} ORDER BY position, created_at, id", meeting_id
    )
    return [_row(record) for record in records]


# --- running live (frames) -----------------------------------------------------------------


def _frame_not_found() -> FrameError:
    return FrameError(ErrorCode.NOT_FOUND, "no such poll in this meeting")


async def act(meeting_id: uuid.UUID, poll_id: uuid.UUID, action: str) -> list[Change]:
    """`open` (closing the meeting's other open poll first), `close` or `reset`; every poll it changed, in order.

    Runs in the caller's `in_order` transaction.
    """
    before = await fetch_poll(meeting_id, poll_id)
    if before is None:
        raise _frame_not_found()
    status = before["status"]
    changes: list[Change] = []
    if action == "open":
        if status == "open":
            raise FrameError(ErrorCode.CONFLICT, "the poll is already open")
        meeting = await Meeting.select(Meeting.status).where(Meeting.id == meeting_id).first()
        meeting_status = None if meeting is None else meeting["status"]
        if meeting_status in ("ended", "cancelled"):
            raise FrameError(ErrorCode.CONFLICT, f"the meeting has {meeting_status}; no poll can be opened")
        other = (
            await Poll.select(*POLL_COLUMNS)
            .where((Poll.meeting == meeting_id) & (Poll.status == "open"))
            .lock_rows("UPDATE")
            .first()
            .output(load_json=True)
        )
        if other is not None:
            changes.append(Change(other, await _set(other["id"], _close())))
        after = await _set(poll_id, {Poll.status: "open", Poll.opened_at: NOW, Poll.closed_at: None})
    elif action == "close":
        if status != "open":
            raise FrameError(ErrorCode.CONFLICT, f"only an open poll can be closed; this one is {status}")
        after = await _set(poll_id, _close())
    elif action == "reset":
        if status != "closed":
            raise FrameError(ErrorCode.CONFLICT, f"only a closed poll can be reset; this one is {status}")
        await PollResponse.delete().where(PollResponse.poll == poll_id)
        after = await _set(poll_id, {})
    else:  # the frame's Literal type makes this unreachable from the wire
        raise FrameError(ErrorCode.BAD_REQUEST, f"unknown action {action!r}")
    changes.append(Change(before, after))
    blocked = await blocked_words(meeting_id)
    for change in changes:
        assert change.after is not None
        change.results = await results(change.after, blocked)
    return changes


def _close() -> dict[Column | str, Any]:
    return {Poll.status: "closed", Poll.closed_at: NOW}


async def _set(poll_id: uuid.UUID, values: dict[Column | str, Any]) -> Row:
    """Update the poll's `values` (and `updated_at`); the row after."""
    updated = await Poll.update({**values, Poll.updated_at: NOW}).where(Poll.id == poll_id).returning(*POLL_COLUMNS)
    return _row(updated[0])


async def load_definition(meeting_id: uuid.UUID, poll_id: uuid.UUID) -> tuple[PollDefinition, bool]:
    """What answers to the poll are checked against, and whether it is frozen (was opened: safe to cache)."""
    row = await fetch_poll(meeting_id, poll_id)
    if row is None:
        raise _frame_not_found()
    return definition(row), row["opened_at"] is not None


_RESPOND = """
WITH poll AS (SELECT id FROM polls WHERE id = {} AND meeting = {} AND status = 'open')
INSERT INTO poll_responses (poll, "user", option_ids, value, words)
SELECT id, {}, {}, {}, {} FROM poll
ON CONFLICT (poll, "user") DO UPDATE
    SET option_ids = EXCLUDED.option_ids, value = EXCLUDED.value, words = EXCLUDED.words, updated_at = now()
RETURNING 1
"""


async def respond(meeting_id: uuid.UUID, poll_id: uuid.UUID, user_id: uuid.UUID, answer: PollAnswer) -> None:
    """Store the user's answer (replacing their earlier one) while the poll is open; conflict if it is not."""
    option_ids = answer.option_ids if answer.option_ids is not msgspec.UNSET else []
    value = answer.value if answer.value is not msgspec.UNSET else None
    words = answer.words if answer.words is not msgspec.UNSET else []
    # hand SQL: one statement that stores the answer only while the poll is open (an insert from a select,
    # which Piccolo's insert cannot take), on the hottest path polls have (docs/polls.md: 5,000 answers in 10 s)
    stored = await PollResponse.raw(_RESPOND, poll_id, meeting_id, user_id, option_ids, value, words)
    if stored:
        return
    poll = await Poll.select(Poll.status).where((Poll.id == poll_id) & (Poll.meeting == meeting_id)).first()
    if poll is None:
        raise _frame_not_found()
    raise FrameError(ErrorCode.CONFLICT, f"the poll is {poll['status']}; answers are taken only while it is open")


# --- snapshots and export ------------------------------------------------------------------


def answer_of(kind: str, option_ids: list[str], value: int | None, words: list[str]) -> PollAnswer:
    if kind == "choice":
        return PollAnswer(option_ids=list(option_ids))
    if kind == "rating":
        return PollAnswer(value=value if value is not None else msgspec.UNSET)
    return PollAnswer(words=list(words))


async def my_answers(meeting_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, PollAnswer]:
    """The user's own answers to the meeting's polls that participants may see, by poll id."""
    # hand SQL: read on every join of a meeting room (see the module docstring)
    records = await PollResponse.raw(
        """SELECT p.id, p.kind, r.option_ids, r.value, r.words FROM poll_responses r JOIN polls p ON p.id = r.poll
           WHERE p.meeting = {} AND r."user" = {} AND p.status <> 'draft'""",
        meeting_id,
        user_id,
    )
    return {str(r["id"]): answer_of(r["kind"], r["option_ids"], r["value"], r["words"]) for r in records}


EXPORT_PAGE = 500
"""Answers read per pooled-connection checkout while exporting."""
EXPORT_STATEMENT_S = 30.0
"""The longest one export statement may run (it holds a pooled connection meanwhile)."""


async def export_rows(meeting_id: uuid.UUID) -> AsyncIterator[Row]:
    """Every answer of a meeting's polls, poll by poll, oldest answer first.

    Like the questions export, each page is one short statement on a pooled connection that goes
    back before the rows are sent, so a client that reads slowly (or never) holds no connection and
    no transaction (PITFALLS 17). Answers are ordered by time, never by user. For anonymous polls the
    statement never reads who answered.
    """
    async with asyncio.timeout(EXPORT_STATEMENT_S):
        polls = (
            await Poll.select(Poll.id.as_alias("poll_id"), Poll.title, Poll.kind, Poll.options, Poll.anonymous)
            .where(Poll.meeting == meeting_id)
            .order_by(*ORDER)
            .output(load_json=True)
        )
    for poll in polls:
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            async with asyncio.timeout(EXPORT_STATEMENT_S):
                answers = await _answers_page(poll["poll_id"], anonymous=poll["anonymous"], after=after)
            for answer in answers:
                yield {**poll, **answer}
            if len(answers) < EXPORT_PAGE:
                break
            after = (answers[-1]["updated_at"], answers[-1]["id"])


async def _answers_page(poll_id: uuid.UUID, *, anonymous: bool, after: tuple[datetime, uuid.UUID] | None) -> list[Row]:
    """A page of answers after `after` (`updated_at`, id), with the respondent's name unless the poll is anonymous."""
    respondent = PollResponse.user.display_name.as_alias("respondent")
    columns: list[Any] = [
        PollResponse.id, PollResponse.option_ids, PollResponse.value, PollResponse.words, PollResponse.updated_at,
    ]  # fmt: skip
    query = PollResponse.select(*columns, *([] if anonymous else [respondent])).where(PollResponse.poll == poll_id)
    if after is not None:
        at, last_id = after
        query = query.where(
            (PollResponse.updated_at > at) | ((PollResponse.updated_at == at) & (PollResponse.id > last_id))
        )
    rows: list[Row] = await query.order_by(PollResponse.updated_at, PollResponse.id).limit(EXPORT_PAGE)
    if anonymous:
        for row in rows:
            row["respondent"] = None
    return rows
