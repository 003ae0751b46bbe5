"""Reactions: counted in memory, summed over every process in Redis, one `reactions` event per room per second.

Reactions are not stored. Each process adds up its rooms' reactions in memory and every
`TICK_S` moves them into one Redis hash per meeting (one script call per busy meeting). The
same call tries to take the whole hash: it may only while the meeting's one-second gate is open,
and taking it closes the gate. The process that took it publishes the sum, so a room gets at most
one `reactions` per second whatever the number of processes, each carrying everything sent since
the previous one; a quiet second takes nothing and publishes nothing. A process whose reactions
are still in the hash behind a closed gate tries again every tick until someone has taken them.
A burst of 5,000 claps costs each process a few script calls, and each member one frame a second.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter

from redis.asyncio import Redis

from channels.seams import Publisher
from server.polls.frames import Reactions
from server.rooms import meeting_room

log = logging.getLogger("roomcast.polls.reactions")

TICK_S = 0.2
WINDOW_MS = 1000
"""At most one `reactions` event per room per this many milliseconds."""
ORPHAN_MS = 60_000
"""Sums left in Redis by processes that all died before publishing them expire after this."""

# KEYS[1]: the meeting's sum (a hash), KEYS[2]: its gate. ARGV[1]: window ms, ARGV[2]: orphan ms,
# then reaction, count pairs to add. Returns the taken hash (a flat list) when this call may
# publish, -1 when nothing is waiting, else the gate's remaining ms.
_ADD_AND_TAKE = """
for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if #ARGV > 2 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  local taken = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1])
  return taken
end
return redis.call('PTTL', KEYS[2])
"""


class ReactionTally:
    def __init__(self, redis: Redis, key_prefix: str, broker: Publisher) -> None:
        self._prefix = key_prefix
        self._broker = broker
        self._script = redis.register_script(_ADD_AND_TAKE)
        self._local: dict[uuid.UUID, Counter[str]] = {}
        self._waiting: set[uuid.UUID] = set()
        """Meetings whose sum in Redis may still hold this process's reactions."""
        self._task: asyncio.Task[None] | None = None

    def add(self, meeting_id: uuid.UUID, reaction: str) -> None:
        self._local.setdefault(meeting_id, Counter())[reaction] += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while self._local or self._waiting:
                await asyncio.sleep(TICK_S)
                local, self._local = self._local, {}
                meetings = set(local) | self._waiting
                await asyncio.gather(*(self._flush(meeting_id, local.get(meeting_id)) for meeting_id in meetings))
        finally:
            self._task = None
            if self._local or self._waiting:  # added while the loop was ending
                self._task = asyncio.create_task(self._run())

    async def _flush(self, meeting_id: uuid.UUID, counts: Counter[str] | None) -> None:
        args: list[str | int] = [WINDOW_MS, ORPHAN_MS]
        for reaction, count in (counts or {}).items():
            args += [reaction, count]
        keys = [f"{self._prefix}:reactions:{meeting_id}", f"{self._prefix}:reactions-gate:{meeting_id}"]
        try:
            result = await self._script(keys=keys, args=args)
        except Exception:
            log.exception("polls.reactions.flush_failed", extra={"meeting_id": str(meeting_id)})
            if counts:  # keep them for the next tick
                self._local.setdefault(meeting_id, Counter()).update(counts)
            return
        if isinstance(result, list):
            self._waiting.discard(meeting_id)
            taken = {_text(result[i]): int(result[i + 1]) for i in range(0, len(result), 2)}
            taken = {reaction: count for reaction, count in taken.items() if count > 0}
            if taken:
                await self._broker.publish(Reactions(room=meeting_room(meeting_id), counts=taken))
        elif int(result) < 0:
            self._waiting.discard(meeting_id)
        else:
            self._waiting.add(meeting_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
