"""Coalesced live totals across processes: at most one event per item per window, the last one exact.

Used for `question.votes` (200 ms per question) and `poll.results` (500 ms per poll). Each process
marks an item dirty when one of its writes commits (`touch`). One flush loop per group (a
meeting) wakes every window and flushes at most `batch` dirty items, oldest first, so a group
with hundreds of busy items sends a bounded number of events per second (each item's window
simply grows; the protocol sets only the minimum spacing).

Across processes, an item's flush holds a Redis lock and then closes a gate for one window that
every process respects; the flush callback reads the state from PostgreSQL after the lock is
taken, and publishes only while the lock is surely still its own (`in_time()`: an overloaded
process gives up and retries in the next window). Flushes of one item are therefore serialised
everywhere and each reads the state after its own writes committed, so the last event always
carries the final totals.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

log = logging.getLogger("roomcast.coalesce")

LOCK_MS = 10_000
"""A flush that crashed holds its items this long; a live one publishes only in the first half."""

# KEYS: gate and lock key of each item, in pairs. ARGV[1]: this flush's token, ARGV[2]: lock ms,
# ARGV[3]: how many items it may take at most (items another process holds or just published are
# skipped, so the budget goes to the next ones). Returns the 1-based indexes of the items granted.
_ACQUIRE = """
local granted = {}
local most = tonumber(ARGV[3])
for i = 1, #KEYS, 2 do
  if #granted >= most then break end
  if redis.call('EXISTS', KEYS[i]) == 0 and redis.call('SET', KEYS[i + 1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    table.insert(granted, (i + 1) / 2)
  end
end
return granted
"""

# KEYS: gate and lock key of each published item. ARGV[1]: token, ARGV[2]: window ms.
_RELEASE = """
for i = 1, #KEYS, 2 do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[2])
  if redis.call('GET', KEYS[i + 1]) == ARGV[1] then redis.call('DEL', KEYS[i + 1]) end
end
return 1
"""

Limit = Callable[[uuid.UUID], Awaitable[int]]
"""`(group)`: how many of the group's dirty items one flush may publish now (at most `batch`); the flush
offers the script up to `batch` of the oldest, so items gated by another process do not use up the limit."""

Flush = Callable[[uuid.UUID, list[uuid.UUID], Callable[[], bool]], Awaitable[bool]]
"""`(group, items, in_time)`: read the items' state and publish it if `in_time()` still holds after the read;
return False when it gave up (the items are flushed again next window)."""


class Coalescer:
    """One kind of coalesced event (`name` names its Redis keys), flushed by `flush` at most every `window_s`."""

    def __init__(
        self,
        redis: Redis,
        key_prefix: str,
        name: str,
        window_s: float,
        flush: Flush,
        *,
        batch: int,
        limit: Limit | None = None,
    ) -> None:
        self._prefix = f"{key_prefix}:{name}"
        self._name = name
        self._window_s = window_s
        self._flush_items = flush
        self._batch = batch
        self._limit = limit
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._dirty: dict[uuid.UUID, dict[uuid.UUID, None]] = {}  # group -> items, oldest first
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    def touch(self, group_id: uuid.UUID, item_id: uuid.UUID) -> None:
        """A write to `item_id` committed in this process: make sure an event follows."""
        self._dirty.setdefault(group_id, {})[item_id] = None
        if group_id not in self._tasks:
            self._tasks[group_id] = asyncio.create_task(self._run(group_id))

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, group_id: uuid.UUID) -> None:
        try:
            while self._dirty.get(group_id):
                try:
                    await self._flush(group_id)
                except Exception:
                    log.exception("coalesce.flush_failed", extra={"kind": self._name, "group_id": str(group_id)})
                await asyncio.sleep(self._window_s)
        finally:
            self._tasks.pop(group_id, None)
            if self._dirty.get(group_id):  # touched while the loop was ending
                self._tasks[group_id] = asyncio.create_task(self._run(group_id))
            else:
                self._dirty.pop(group_id, None)

    async def _flush(self, group_id: uuid.UUID) -> None:
        dirty = self._dirty[group_id]
        candidates = list(dirty)[: self._batch]
        most = len(candidates)
        if self._limit is not None and most > 1:  # one item always goes: no need to ask
            try:
                most = max(1, min(most, await self._limit(group_id)))
            except Exception:  # the limit is a refinement: without it, the fixed batch
                extra = {"kind": self._name, "group_id": str(group_id)}
                log.warning("coalesce.limit_failed", extra=extra, exc_info=True)
        token = uuid.uuid4().hex
        keys = [key for item in candidates for key in self._keys(item)]
        locked_until = time.monotonic() + LOCK_MS / 2000
        granted = [candidates[i - 1] for i in await self._acquire(keys=keys, args=[token, LOCK_MS, most])]
        if not granted:
            return
        for item in granted:  # cleared before reading, so a write after the read marks it again
            dirty.pop(item, None)
        published = False
        try:
            published = await self._flush_items(group_id, granted, lambda: time.monotonic() <= locked_until)
            if not published:
                # so slow (an overloaded process) that the lock may have expired and another process
                # published since: publishing now could break the spacing; the next window retries
                log.warning("coalesce.flush_too_slow", extra={"kind": self._name, "group_id": str(group_id)})
        finally:
            if not published:
                for item in granted:
                    dirty[item] = None
            released = [key for item in granted for key in self._keys(item)]
            await self._release(keys=released, args=[token, int(self._window_s * 1000)])

    def _keys(self, item_id: uuid.UUID) -> tuple[str, str]:
        return f"{self._prefix}-gate:{item_id}", f"{self._prefix}-lock:{item_id}"
