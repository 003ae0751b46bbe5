"""What happens to a question after it is asked: moderation as a table of transitions, the author's
edit and delete, and merging duplicates.

Each runs in one transaction on the connection `server.qa.service.in_order` holds (the meeting's
lock), reads the question as it is, refuses what its state does not allow (`conflict`) and
returns every question it changed, before and after, for `server.qa.publish`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from piccolo.query.functions.aggregate import Count
from piccolo.query.functions.conditional import Coalesce
from piccolo.querystring import QueryString

from channels.protocol import ErrorCode, FrameError
from server.db import NOW, on_connection
from server.qa.rules import blocked_words_in, clean_text
from server.qa.service import (
    CLOSED_MEETING,
    PUBLIC_STATUSES,
    Change,
    Row,
    Values,
    fetch_question,
    meeting_closed,
    meeting_info,
)
from server.qa.tables import Mute, Question, Vote


async def _no_step(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    return []


async def _unpin_others(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    """At most one pinned question per meeting: pinning one unpins the other first."""
    changes = []
    for other in await Question.select(Question.id).where(Question.meeting == meeting_id, Question.pinned.eq(True)):
        other_before = await fetch_question(connection, meeting_id, other["id"])
        await _update(meeting_id, other["id"], {Question.pinned: False})
        changes.append(Change(other_before, await fetch_question(connection, meeting_id, other["id"])))
    return changes


def _authorless(before: Row) -> str | None:
    """Nobody to mute: the author deleted their account (the question stays, with no author)."""
    return "the author of this question deleted their account" if before["author"] is None else None


async def _mute(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    await Mute.insert(Mute(meeting=meeting_id, user=before["author"], created_at=NOW)).on_conflict(action="DO NOTHING")
    return []


async def _unmute(connection: asyncpg.Connection, meeting_id: uuid.UUID, before: Row) -> list[Change]:
    await Mute.delete().where(Mute.meeting == meeting_id, Mute.user == before["author"])
    return []


def _answered(text: str | None, reason: str | None) -> Values:
    answer = text.strip() if text else None
    if answer is not None and len(answer) > 5000:
        raise FrameError(ErrorCode.BAD_REQUEST, "the answer is over 5000 characters")
    return {
        Question.status: "answered",
        Question.answer: answer or None,
        Question.answered_at: Coalesce(Question.answered_at, NOW),
    }


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One `moderate` action: from which statuses, what it writes, and its extra steps."""

    from_statuses: frozenset[str] | None = None
    """The statuses the action applies to (None: any); others are refused with `conflict`."""
    refusal: str = ""
    """The `conflict` message, `{status}` filled in."""
    assignments: Callable[[str | None, str | None], Values] | None = None
    """`(text, reason)` of the frame -> the question's new values (may refuse the input).

    None: the question row does not change."""
    unchanged_if: Callable[[Row], bool] = lambda before: False
    """Already so: nothing to write, nothing to publish."""
    refuse_if: Callable[[Row], str | None] = lambda before: None
    """A further refusal (`conflict`) that depends on more than the status."""
    step: Callable[[asyncpg.Connection, uuid.UUID, Row], Awaitable[list[Change]]] = _no_step
    """Runs before the question's update, in the same transaction (Piccolo bound to its connection);
    returns other questions it changed."""


TRANSITIONS: dict[str, Transition] = {
    "approve": Transition(
        from_statuses=frozenset({"pending"}),
        refusal="only pending questions can be approved; this one is {status}",
        assignments=lambda text, reason: {Question.status: "live"},
    ),
    "dismiss": Transition(
        from_statuses=frozenset({"pending", "live", "answered"}),
        refusal="the question is already dismissed",
        assignments=lambda text, reason: {
            Question.status: "dismissed",
            Question.pinned: False,
            Question.dismiss_reason: reason,
        },
    ),
    "pin": Transition(
        from_statuses=frozenset(PUBLIC_STATUSES),
        refusal="a {status} question cannot be pinned",
        assignments=lambda text, reason: {Question.pinned: True},
        unchanged_if=lambda before: bool(before["pinned"]),
        step=_unpin_others,
    ),
    "unpin": Transition(
        assignments=lambda text, reason: {Question.pinned: False},
        unchanged_if=lambda before: not before["pinned"],
    ),
    "answer": Transition(
        from_statuses=frozenset({"live", "answered", "pending"}),
        refusal="a {status} question cannot be answered",
        assignments=_answered,
    ),
    "reopen": Transition(
        from_statuses=frozenset({"answered", "dismissed"}),
        refusal="only answered or dismissed questions can be reopened; this one is {status}",
        assignments=lambda text, reason: {
            Question.status: "live",
            Question.dismiss_reason: None,
            Question.answered_at: None,
        },
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
    """Apply one moderation action (`TRANSITIONS`) in one transaction on `connection` (`in_order`'s).

    Returns every question it changed (pinning can change two).
    """
    transition = TRANSITIONS.get(action)
    if transition is None:  # the frame's Literal type makes this unreachable from the wire
        raise FrameError(ErrorCode.BAD_REQUEST, f"unknown action {action!r}")
    values = None if transition.assignments is None else transition.assignments(text, reason)
    async with on_connection(connection), connection.transaction():
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
        if values is None:
            return changes
        await _update(meeting_id, question_id, values)
        changes.append(Change(before, await fetch_question(connection, meeting_id, question_id)))
        return changes


async def _update(meeting_id: uuid.UUID, question_id: uuid.UUID, values: Values) -> None:
    """Set `values` and `updated_at`; the row must also be in `meeting_id`, the meeting the frame named."""
    await Question.update({**values, Question.updated_at: NOW}).where(
        Question.id == question_id, Question.meeting == meeting_id
    )


async def edit(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, question_id: uuid.UUID, user_id: uuid.UUID, text: str
) -> Change:
    """The author rewrites their question while it is not answered (or dismissed); blocked words are checked again."""
    async with on_connection(connection), connection.transaction():
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
        values: Values = {Question.text: text}
        if flagged_words:
            values |= {
                Question.status: "pending",
                Question.pinned: False,
                Question.flagged: True,
                Question.flagged_words: flagged_words,
            }
        await _update(meeting_id, question_id, values)
        return Change(before, await fetch_question(connection, meeting_id, question_id))


async def delete(
    connection: asyncpg.Connection,
    meeting_id: uuid.UUID,
    question_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    moderator: bool,
) -> Change:
    async with on_connection(connection), connection.transaction():
        before = await fetch_question(connection, meeting_id, question_id)
        if not moderator and before["author"] != user_id:
            raise FrameError(ErrorCode.FORBIDDEN, "only the author, the owner or a presenter can delete a question")
        await Question.delete().where(Question.id == question_id, Question.meeting == meeting_id)
        return Change(before, None)


async def merge(
    connection: asyncpg.Connection, meeting_id: uuid.UUID, question_id: uuid.UUID, into_id: uuid.UUID
) -> list[Change]:
    """Dismiss `question_id` as a duplicate of `into_id`; its voters and author become voters of the target.

    A voter of both counts once; the votes of deleted accounts (no user) carry over as one vote,
    as a `UNION` of the voters would have it.
    """
    if question_id == into_id:
        raise FrameError(ErrorCode.BAD_REQUEST, "a question cannot be merged into itself")
    async with on_connection(connection), connection.transaction():
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
        # hand SQL: the voters move inside PostgreSQL in one statement; through Piccolo every voter would
        # come to Python and go back as three parameters, past asyncpg's 32,767 at ~11,000 voters
        await Vote.raw(
            """INSERT INTO votes (question, "user")
               SELECT {}::uuid, "user" FROM votes WHERE question = {}
               UNION SELECT {}::uuid, {}::uuid WHERE {}::uuid IS NOT NULL
               ON CONFLICT DO NOTHING""",
            into_id,
            question_id,
            into_id,
            source["author"],
            source["author"],
        )
        counted = Vote.select(Count()).where(Vote.question == into_id)
        await _update(meeting_id, into_id, {Question.votes: QueryString("({})", counted.querystrings[0])})
        dismissed: Values = {
            Question.status: "dismissed",
            Question.pinned: False,
            Question.dismiss_reason: "duplicate",
            Question.merged_into: into_id,
        }
        await _update(meeting_id, question_id, dismissed)
        return [
            Change(source, await fetch_question(connection, meeting_id, question_id), merged_into=into_id),
            Change(target, await fetch_question(connection, meeting_id, into_id)),
        ]
