"""Redis fan-out: encode once, per-room seq and epoch, history for recovery. (Being built: see issue 5.)"""

from __future__ import annotations

from redis.asyncio import Redis

from channels.protocol import Event


class Broker:
    """Publishes room events to every server process through Redis.

    `publish` assigns the room's next seq atomically in Redis, appends the encoded event to the
    room's history and publishes the bytes once; it returns the seq.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def publish(self, event: Event) -> int:
        raise NotImplementedError("the broker lands with the realtime core (issue 5)")

    async def disconnect_user(self, user_id: str, room_prefix: str, code: int) -> None:
        """Close, on every server process, the sockets of `user_id` that joined a room starting with `room_prefix`."""
        raise NotImplementedError("the broker lands with the realtime core (issue 5)")
