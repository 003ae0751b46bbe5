"""`publish_many` on the memory backend: the same seq, epoch and history as one `publish` per event."""

from __future__ import annotations

from channels.memory import MemoryBroker
from tests.channels.publishing import check_publish_many


async def test_publishing_several_rooms_at_once_numbers_and_keeps_each_room_s_events() -> None:
    broker = MemoryBroker()

    async def lose(room: str) -> None:
        broker.lose_room(room)

    await check_publish_many(broker, lose)
