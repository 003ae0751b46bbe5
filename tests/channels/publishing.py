"""What every `Stream` must do when it publishes, one event or several at once (`publish_many`).

Run against `channels.memory` in tests/channels/test_publish_many.py and against Redis (the Lua
script) in tests/realtime/test_stream_publish.py, so both backends keep seq, epoch and history
exactly alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from channels.backend import Stream
from tests.channels.support import Note


async def check_publish_many(stream: Stream, lose_room: Callable[[str], Awaitable[None]]) -> None:
    """Seqs per room in the order given, history that replays them, a lost room starting a new epoch."""
    a, b, c = "open:a", "open:b", "open:c"
    notes = [Note(room=a, text="a1"), Note(room=b, text="b1"), Note(room=a, text="a2"), Note(room=c, text="c1")]
    assert await stream.publish_many(notes) == [1, 1, 2, 1]
    assert await stream.publish_many([Note(room=a, text="a3")]) == [3]
    assert await stream.publish(Note(room=b, text="b2")) == 2
    assert await stream.publish_many([]) == []

    cursor = await stream.cursor(a, since=0)
    assert cursor.recovered and cursor.seq == 3
    assert [(e.seq, e.kind, e.data) for e in cursor.events] == [
        (n, "test.note", b'{"type":"test.note","room":"open:a","text":"a%d","seq":%d}' % (n, n)) for n in (1, 2, 3)
    ]
    assert all(e.epoch == cursor.epoch for e in cursor.events)
    assert (await stream.cursor(b, since=1, epoch=(await stream.cursor(b)).epoch)).events[0].seq == 2

    before = {room: (await stream.cursor(room)).epoch for room in (a, b, c)}
    await lose_room(b)
    assert await stream.publish_many([Note(room=a, text="a4"), Note(room=b, text="b again")]) == [4, 1]
    after = {room: (await stream.cursor(room)).epoch for room in (a, b, c)}
    assert after[a] == before[a] and after[c] == before[c] and after[b] != before[b]

    with pytest.raises(ValueError, match="needs a room"):
        await stream.publish_many([Note(room=a, text="a5"), Note(room="", text="nowhere")])
    assert (await stream.cursor(a)).seq == 4  # nothing of a refused call was published
