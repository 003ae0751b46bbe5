"""Turning a question's change into room events, each audience with its own view.

Three audiences see a question: the public room `meeting:<id>` (live and answered questions,
anonymous authors hidden), the moderation room `meeting:<id>:moderation` (every question, plus
the blocked words that held it; anonymous authors hidden there too), and the author's own
`user:<id>` room (every change to their own question, with themselves as author even when
anonymous, so they always learn what became of it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from channels.protocol import Event
from channels.seams import Publisher
from channels.sharding import ShardUnavailable
from server.qa.frames import (
    Author,
    ModeratorQuestionOut,
    QuestionCreated,
    QuestionOut,
    QuestionRemoved,
    QuestionUpdated,
)
from server.qa.service import PUBLIC_STATUSES, Change, Row
from server.rooms import USER_ROOM_PREFIX, meeting_room, moderation_room, user_room
from server.times import iso_z

log = logging.getLogger("roomcast.qa")


def question_view(row: Row, *, moderator: bool = False, as_author: bool = False) -> QuestionOut:
    """The question as one audience sees it."""
    return _view(row, _shared_fields(row), moderator=moderator, as_author=as_author)


def _shared_fields(row: Row) -> dict[str, Any]:
    """What every audience's view has in common (all but the author and the blocked words), built once per change."""
    return {
        "id": str(row["id"]),
        "meeting_id": str(row["meeting"]),
        "text": row["text"],
        "status": row["status"],
        "pinned": row["pinned"],
        "votes": row["votes"],
        "anonymous": row["anonymous"],
        "answer": row["answer"],
        "created_at": iso_z(row["created_at"]),
        "updated_at": iso_z(row["updated_at"]),
        "answered_at": iso_z(row["answered_at"]),
        "flagged": row["flagged"],
        "dismiss_reason": row["dismiss_reason"],
        "merged_into": str(row["merged_into"]) if row["merged_into"] else None,
    }


def _view(row: Row, shared: dict[str, Any], *, moderator: bool, as_author: bool) -> QuestionOut:
    shown = row["author"] is not None and (as_author or not row["anonymous"])
    author = Author(id=str(row["author"]), display_name=row["author_name"]) if shown else None
    if moderator:
        return ModeratorQuestionOut(**shared, author=author, flagged_words=list(row["flagged_words"] or []))
    return QuestionOut(**shared, author=author)


def _visible(row: Row | None) -> bool:
    return row is not None and row["status"] in PUBLIC_STATUSES


def events_for(change: Change) -> list[Event]:
    """Every room event one change produces, for all three audiences."""
    before, after = change.before, change.after
    current = after or before
    assert current is not None
    meeting_id, question_id = current["meeting"], str(current["id"])
    merged_into = str(change.merged_into) if change.merged_into else None
    events: list[Event] = []

    shared = None if after is None else _shared_fields(after)
    public = None if after is None or shared is None else _view(after, shared, moderator=False, as_author=False)
    room = meeting_room(meeting_id)
    if _visible(after) and not _visible(before):
        events.append(QuestionCreated(room=room, question=public))  # type: ignore[arg-type]
    elif _visible(after):
        events.append(QuestionUpdated(room=room, question=public))  # type: ignore[arg-type]
    elif _visible(before):
        events.append(QuestionRemoved(room=room, question_id=question_id, merged_into=merged_into))

    audiences: list[tuple[str, bool]] = [(moderation_room(meeting_id), True)]  # (room, moderator)
    if current["author"] is not None:  # None once the author deleted their account
        audiences.append((user_room(current["author"]), False))
    for room, moderator in audiences:
        if after is None or shared is None:
            events.append(QuestionRemoved(room=room, question_id=question_id, merged_into=merged_into))
            continue
        view = _view(after, shared, moderator=moderator, as_author=not moderator)
        if before is None:
            events.append(QuestionCreated(room=room, question=view))
        else:
            events.append(QuestionUpdated(room=room, question=view))
    return events


async def publish_events(broker: Publisher, events: Iterable[Event]) -> None:
    """Publish `events`, one room's in the order given: one round trip per Redis involved.

    A question's change reaches the meeting's rooms (public and moderation, one Redis: they share
    the meeting's shard) and the author's room (the author's shard), in parallel. If only the
    author's shard is down, the change still counts as published: the meeting's rooms have it,
    and the author's sockets get an unsolicited `joined` once that shard is back.
    """
    try:
        await broker.publish_many(list(events))
    except ShardUnavailable as err:
        if any(not room.startswith(USER_ROOM_PREFIX) for room in err.rooms):
            raise
        log.warning("qa.user_room_event_lost", extra={"rooms": len(err.rooms), "error": str(err)})


async def publish_changes(broker: Publisher, changes: list[Change]) -> None:
    """Publish every event of `changes`; events of one room keep their order."""
    await publish_events(broker, (event for change in changes for event in events_for(change)))
