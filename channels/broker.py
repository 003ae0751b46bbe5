"""The names this module had before the core was split: `Broker` is the Redis room stream.

Publishing code (`Broker(redis, prefix).publish(event)`) keeps working; new code uses
`channels.stream.RedisStream` and, for what features see, `channels.seams.Publisher`.
"""

from __future__ import annotations

from channels.backend import BrokerUnavailable, Cursor, Disconnect, room_matches
from channels.stream import RedisStream as Broker

__all__ = ["Broker", "BrokerUnavailable", "Cursor", "Disconnect", "room_matches"]
