"""The room-name grammar: the one module that builds and parses roomcast's room names.

- `meeting:<id>`: everyone in the meeting (the public room);
- `meeting:<id>:moderation`: the meeting's owner and presenters;
- `user:<id>`: one user alone (the realtime core's own convention, `channels.rooms.user_room`).

With several room Redis servers (`ROOMCAST_ROOM_REDIS_URLS`), `shard_key` says where a room lives:
a meeting's rooms share their meeting's shard, a user room its user's.

Ids are lower-case UUIDs, one spelling per room: `meeting:<ID>` in upper case is not a room, or
one meeting would have several. Anything that does not parse is "no such room".
"""

from __future__ import annotations

import uuid
from typing import Final, NamedTuple

from channels.rooms import USER_ROOM_PREFIX, user_room

MEETING: Final = "meeting"
MODERATION: Final = "moderation"

__all__ = [
    "MEETING",
    "MODERATION",
    "USER_ROOM_PREFIX",
    "MeetingRoom",
    "meeting_room",
    "moderation_room",
    "owns_meeting_room",
    "parse_meeting_room",
    "shard_key",
    "user_room",
]


class MeetingRoom(NamedTuple):
    meeting_id: uuid.UUID
    moderation: bool


def meeting_room(meeting_id: uuid.UUID | str) -> str:
    return f"{MEETING}:{meeting_id}"


def moderation_room(meeting_id: uuid.UUID | str) -> str:
    return f"{MEETING}:{meeting_id}:{MODERATION}"


def owns_meeting_room(room: str) -> bool:
    """The family test a room policy answers with (`meeting:` and anything under it)."""
    return room.startswith(MEETING + ":")


def parse_meeting_room(room: str) -> MeetingRoom | None:
    """`(meeting_id, moderation)` for `meeting:<uuid>` / `meeting:<uuid>:moderation`, else None."""
    parts = room.split(":")
    if parts[0] != MEETING or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != MODERATION):
        return None
    try:
        meeting_id = uuid.UUID(parts[1])
    except ValueError:
        return None
    if str(meeting_id) != parts[1]:
        return None  # one spelling per room, or one meeting would have several rooms
    return MeetingRoom(meeting_id, len(parts) == 3)


def shard_key(room: str) -> str | None:
    """The key that places `room` on a room shard (`channels.shards`); None keeps it on `REDIS_URL`.

    `meeting:<id>` and `meeting:<id>:moderation` have the meeting id (so one event for both rooms
    is one round trip to one shard), `user:<id>` the user id; anything else has none.
    """
    if room.startswith(USER_ROOM_PREFIX):
        user_id = room[len(USER_ROOM_PREFIX) :]
        return user_id or None
    parsed = parse_meeting_room(room)
    return None if parsed is None else str(parsed.meeting_id)
