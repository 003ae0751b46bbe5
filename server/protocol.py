"""The whole WebSocket protocol of roomcast: every client frame the gateway decodes, every server frame.

The gateway decodes all client frames with one msgspec decoder over `CLIENT_FRAMES` and refuses
to start if a non-core frame has no handler, so a feature adds its frames here *and* its router
in `server.app`. `SERVER_FRAMES` is what `/asyncapi.json` documents (room events included).
"""

from __future__ import annotations

from typing import Final

from channels.presence import PresenceChanged
from channels.protocol import CORE_CLIENT_FRAMES, CORE_SERVER_FRAMES, ClientFrame, ServerFrame
from server.calendar.schemas import CalendarUpdated
from server.meetings.events import MeetingUpdated
from server.notifications.handlers import NOTIFICATION_CLIENT_FRAMES
from server.notifications.service import NotificationEvent
from server.polls.frames import POLL_CLIENT_FRAMES, POLL_EVENTS
from server.qa.frames import QA_CLIENT_FRAMES, QA_EVENTS

CLIENT_FRAMES: Final[tuple[type[ClientFrame], ...]] = (
    *CORE_CLIENT_FRAMES,
    *QA_CLIENT_FRAMES,
    *POLL_CLIENT_FRAMES,
    *NOTIFICATION_CLIENT_FRAMES,
)
"""Core frames (auth, join, leave, ping), then each feature's (Q&A, polls and reactions, notifications)."""

SERVER_FRAMES: Final[tuple[type[ServerFrame], ...]] = (
    *CORE_SERVER_FRAMES,
    PresenceChanged,
    MeetingUpdated,
    *QA_EVENTS,
    *POLL_EVENTS,
    NotificationEvent,
    CalendarUpdated,
)
"""Core frames (welcome, joined, reply, error, pong), then room events of every feature."""
