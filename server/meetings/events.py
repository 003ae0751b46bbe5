"""What meeting setup tells the realtime side: `meeting.updated`, and removing people from a meeting's rooms.

REST handlers call these after their transaction has committed, so a client never hears of a
change that was rolled back. The database is the source of truth: if Redis or the broker
fails, the REST call still succeeds (the change is stored) and the failure is logged with the
ids; connected clients catch up from the meeting snapshot when they next join.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

import msgspec

from channels.protocol import CloseCode, Event
from server.meetings.schemas import Meeting
from server.rooms import meeting_room
from server.services import Services

log = logging.getLogger("roomcast.meetings")


class MeetingUpdated(Event, tag="meeting.updated", kw_only=True):
    """Sent to `meeting:<id>` when a meeting's fields, settings or status change."""

    meeting: Meeting


def participant_view(meeting: Meeting) -> Meeting:
    """The meeting as `meeting:<id>` sees it: blocked words are moderation settings, and a
    participant who learns them learns how to get around them; the list is empty there. Owners and
    presenters read it from REST and from the moderation room's snapshot."""
    if not meeting.settings.blocked_words:
        return meeting
    settings = msgspec.structs.replace(meeting.settings, blocked_words=[])
    return msgspec.structs.replace(meeting, settings=settings)


async def publish_meeting_updated(services: Services, meeting: Meeting) -> None:
    """Publish `meeting.updated` to the meeting's room (as participants see it); never raises."""
    try:
        await services.broker.publish(MeetingUpdated(room=meeting_room(meeting.id), meeting=participant_view(meeting)))
    except Exception:
        log.exception("meetings.publish_failed", extra={"meeting_id": str(meeting.id), "event": "meeting.updated"})


async def close_meeting_rooms(services: Services, meeting_id: uuid.UUID) -> None:
    """Close (4403) every socket in any of the meeting's rooms, on every process (it was deleted); never raises."""
    try:
        await services.broker.disconnect_user("*", meeting_room(meeting_id), CloseCode.REMOVED)
    except Exception:
        log.exception("meetings.disconnect_failed", extra={"meeting_id": str(meeting_id), "user_id": "*"})


async def remove_from_rooms(services: Services, meeting_id: uuid.UUID, user_ids: Iterable[uuid.UUID]) -> None:
    """Close (4403) every socket of these users that joined one of the meeting's rooms; never raises.

    One failure is logged with its ids and a count of the rest, not one line per user: when the
    broker is down, it is down for all of them.
    """
    room_prefix = meeting_room(meeting_id)
    failed: list[str] = []
    for user_id in user_ids:
        try:
            await services.broker.disconnect_user(str(user_id), room_prefix, CloseCode.REMOVED)
        except Exception:
            if not failed:
                log.exception(
                    "meetings.disconnect_failed", extra={"meeting_id": str(meeting_id), "user_id": str(user_id)}
                )
            failed.append(str(user_id))
    if len(failed) > 1:
        log.error("meetings.disconnect_failed_more", extra={"meeting_id": str(meeting_id), "users": len(failed)})
