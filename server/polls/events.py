"""Turning a poll's change into room events, each audience with its own view.

Two audiences see a poll: the moderation room `meeting:<id>:moderation` (every poll, drafts
too, always with results) and the public room `meeting:<id>` (polls that are not drafts, with
results only as `show_results` allows: `live` always, `closed` once the poll is closed, `never`
not at all). A change is `poll.opened` or `poll.closed` when the status moved that way,
`poll.removed` when the room can no longer see the poll, else `poll.updated`.
"""

from __future__ import annotations

from typing import Any

from channels.protocol import Event
from channels.seams import Publisher
from server.polls.frames import (
    PollClosed,
    PollOpened,
    PollOption,
    PollOut,
    PollRemoved,
    PollResults,
    PollResultsEvent,
    PollUpdated,
)
from server.polls.service import Change, Row
from server.qa.publish import publish_events
from server.rooms import meeting_room, moderation_room
from server.times import iso_z


def public_sees(row: Row | None) -> bool:
    return row is not None and row["status"] != "draft"


def results_visible(row: Row, *, moderator: bool) -> bool:
    """May this audience see the poll's results now?"""
    if moderator:
        return True
    if row["status"] == "draft":
        return False
    show: str = row["show_results"]
    return show == "live" or (show == "closed" and row["status"] == "closed")


def poll_view(row: Row, results: PollResults | None, *, moderator: bool) -> PollOut:
    """The poll as one audience sees it (`results` null where it may not see them)."""
    return PollOut(
        id=str(row["id"]),
        meeting_id=str(row["meeting"]),
        kind=row["kind"],
        title=row["title"],
        options=[PollOption(id=option["id"], text=option["text"]) for option in row["options"]],
        multiple=row["multiple"],
        scale_max=row["scale_max"],
        anonymous=row["anonymous"],
        show_results=row["show_results"],
        status=row["status"],
        position=row["position"],
        created_at=iso_z(row["created_at"]) or "",
        opened_at=iso_z(row["opened_at"]),
        closed_at=iso_z(row["closed_at"]),
        results=results if results_visible(row, moderator=moderator) else None,
    )


def _event(room: str, change: Change, *, moderator: bool, visible_before: bool) -> Event:
    after = change.after
    assert after is not None
    poll = poll_view(after, change.results, moderator=moderator)
    before_status = change.before["status"] if change.before is not None and visible_before else None
    if after["status"] == "open" and before_status != "open":
        return PollOpened(room=room, poll=poll)
    if after["status"] == "closed" and before_status == "open":
        return PollClosed(room=room, poll=poll)
    return PollUpdated(room=room, poll=poll)


def events_for(change: Change) -> list[Event]:
    """Every room event one change produces, for both audiences."""
    current = change.after or change.before
    assert current is not None
    meeting_id, poll_id = current["meeting"], str(current["id"])
    events: list[Event] = []
    room = moderation_room(meeting_id)
    if change.after is None:
        events.append(PollRemoved(room=room, poll_id=poll_id))
    else:
        events.append(_event(room, change, moderator=True, visible_before=change.before is not None))
    room = meeting_room(meeting_id)
    if public_sees(change.after):
        events.append(_event(room, change, moderator=False, visible_before=public_sees(change.before)))
    elif public_sees(change.before):
        events.append(PollRemoved(room=room, poll_id=poll_id))
    return events


def results_events(row: Row, results: PollResults) -> list[Event]:
    """`poll.results` for the moderation room always, for the public room only while `show_results` is live."""
    rooms = [moderation_room(row["meeting"])]
    if public_sees(row) and row["show_results"] == "live":
        rooms.append(meeting_room(row["meeting"]))
    return [PollResultsEvent(room=room, poll_id=str(row["id"]), results=results) for room in rooms]


async def publish_changes(broker: Publisher, changes: list[Change]) -> None:
    """Publish every event of `changes`; events of one room keep their order."""
    await publish_events(broker, (event for change in changes for event in events_for(change)))


def views(rows: list[tuple[Row, PollResults]], *, moderator: bool) -> list[Any]:
    return [poll_view(row, results, moderator=moderator) for row, results in rows]
