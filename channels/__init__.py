"""roomcast's realtime core: rooms over one WebSocket, fanned out through Redis. Knows nothing of meetings.

The public API features and the application use (the module map is docs/architecture.md):
"""

from channels.config import GatewayConfig
from channels.plugin import GatewayPlugin
from channels.protocol import ClientFrame, CloseCode, ErrorCode, Event, FrameError, RoomFrame, ServerFrame
from channels.seams import FrameRouter, Grant, Identity, Publisher, RoomPolicy, SessionView

__all__ = [
    "ClientFrame",
    "CloseCode",
    "ErrorCode",
    "Event",
    "FrameError",
    "FrameRouter",
    "GatewayConfig",
    "GatewayPlugin",
    "Grant",
    "Identity",
    "Publisher",
    "RoomFrame",
    "RoomPolicy",
    "ServerFrame",
    "SessionView",
]
