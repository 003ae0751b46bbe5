"""Who is in a room, across every server process: distinct users, with entries that expire.

A room opts in through its policy (`RoomPolicy.tracks_presence`). Each process keeps one entry
per (process, user) in the room's sorted set, scored by its expiry time in Redis's clock, and
refreshes them every `ttl_s / 3`; a process that dies (SIGKILL, lost host) stops refreshing
and its entries fall out after `ttl_s`. A user with two tabs on two processes has two entries
and counts once.

Changes are announced as a `presence {count}` room event, at most once per `min_interval_s`
per room across all processes: a Lua script compares the count with the last announced one and
holds a short-lived token, so bursts of joins become one event and an unchanged count none.
Expiries are noticed by the processes that still have members there (their refresh loop asks
again), which are exactly the ones whose clients need to hear about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from channels.protocol import Event
from channels.seams import Publisher

log = logging.getLogger("roomcast.presence")

NODE_ID_LENGTH: Final = 16

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

TOUCH_LUA: Final = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return #ARGV - 1
"""
)
"""KEYS: the room's set. ARGV: ttl ms, then members (`<node id><user id>`)."""

_COUNT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local seen = {}
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local user = string.sub(m, 17)
  if not seen[user] then seen[user] = true n = n + 1 end
end
"""
)

COUNT_LUA: Final = _COUNT + "return n\n"
"""KEYS: the room's set. Distinct users with a live entry."""

ANNOUNCE_LUA: Final = (
    _COUNT
    + """
local last = redis.call('GET', KEYS[2])
if last and tonumber(last) == n then return {-1, n} end
local wait = redis.call('PTTL', KEYS[3])
if wait > 0 then return {wait, n} end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
redis.call('SET', KEYS[2], n, 'PX', ARGV[2])
return {0, n}
"""
)
"""KEYS: set, last announced count, token. ARGV: min interval ms, last-count ttl ms.

{0, n}: announce n now; {ms, n}: someone announced less than an interval ago, ask again in ms;
{-1, n}: nothing changed."""


class PresenceChanged(Event, tag="presence", kw_only=True):
    """`presence {count}`: distinct users in the room across all servers (coalesced, at most 1/s)."""

    count: int


class PresenceTracker:
    """Enter/leave bookkeeping for this process, the refresh loop, counts and coalesced announcements."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        broker: Publisher,
        *,
        ttl_s: float = 15.0,
        min_interval_s: float = 1.0,
        redis_for: Callable[[str], Redis] | None = None,
    ) -> None:
        """`redis_for(room)`: the Redis that holds the room (its shard), when rooms are spread over several."""
        self.redis = redis
        self._redis_for = redis_for
        self.prefix = prefix
        self.broker = broker
        self.ttl_s = ttl_s
        self.min_interval_s = min_interval_s
        self.node_id = secrets.token_hex(NODE_ID_LENGTH // 2)
        self._local: dict[str, Counter[str]] = {}
        """room -> user id -> sockets of this process in that room."""
        self._touch = redis.register_script(TOUCH_LUA)
        self._count = redis.register_script(COUNT_LUA)
        self._announce = redis.register_script(ANNOUNCE_LUA)
        self._scheduled: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def _key(self, room: str) -> str:
        return f"{self.prefix}:presence:{{{room}}}"

    def _client(self, room: str) -> Redis:
        return self.redis if self._redis_for is None else self._redis_for(room)

    async def enter(self, room: str, user_id: str) -> None:
        """One more socket of `user_id` in `room` on this process."""
        users = self._local.setdefault(room, Counter())
        users[user_id] += 1
        if users[user_id] == 1:
            await self._touch(
                keys=[self._key(room)], args=[int(self.ttl_s * 1000), self.node_id + user_id], client=self._client(room)
            )
            self.changed(room)

    async def leave(self, room: str, user_id: str) -> None:
        """One socket fewer; the user's entry goes when their last socket here leaves."""
        users = self._local.get(room)
        if users is None or users[user_id] <= 0:
            return
        users[user_id] -= 1
        if users[user_id] > 0:
            return
        del users[user_id]
        if not users:
            del self._local[room]
        try:
            await self._client(room).zrem(self._key(room), self.node_id + user_id)
        except (RedisError, OSError) as err:
            log.warning("presence.leave_failed", extra={"room": room, "error": type(err).__name__})
            return  # the entry expires on its own
        self.changed(room)

    async def count(self, room: str) -> int:
        """Distinct users in `room` across all processes, right now."""
        return int(await self._count(keys=[self._key(room)], client=self._client(room)))

    def changed(self, room: str) -> None:
        """The count of `room` may have changed: announce it (coalesced) unless already scheduled."""
        if room in self._scheduled:
            return
        self._scheduled[room] = asyncio.create_task(self._announce_when_allowed(room))

    async def _announce_when_allowed(self, room: str) -> None:
        try:
            while True:
                wait, count = await self._announce(
                    keys=[self._key(room), self._key(room) + ":last", self._key(room) + ":tick"],
                    args=[int(self.min_interval_s * 1000), int(self.ttl_s * 4000)],
                    client=self._client(room),
                )
                if int(wait) < 0:
                    return
                if int(wait) == 0:
                    await self.broker.publish(PresenceChanged(room=room, count=int(count)))
                    return
                await asyncio.sleep(int(wait) / 1000)
        except (RedisError, OSError) as err:
            log.warning("presence.announce_failed", extra={"room": room, "error": type(err).__name__})
        finally:
            self._scheduled.pop(room, None)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_forever(), name="roomcast.presence.refresh")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._scheduled.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            with contextlib.suppress(Exception):
                await self.refresh()

    async def refresh(self) -> None:
        """Extend this process's entries and re-check every local room's count (notices expiries)."""
        rooms = {room: list(users) for room, users in self._local.items() if users}
        if not rooms:
            return
        ttl_ms = int(self.ttl_s * 1000)
        by_client: dict[int, tuple[Redis, list[str]]] = {}
        for room in rooms:
            client = self._client(room)
            by_client.setdefault(id(client), (client, []))[1].append(room)

        async def touch(client: Redis, names: list[str]) -> list[str]:
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for room in names:
                        args: list[int | str] = [ttl_ms, *(self.node_id + u for u in rooms[room])]
                        await self._touch(keys=[self._key(room)], args=args, client=pipe)
                    await pipe.execute()
            except (RedisError, OSError) as err:
                log.warning("presence.refresh_failed", extra={"rooms": len(names), "error": type(err).__name__})
                return []
            return names

        touched = await asyncio.gather(*(touch(client, names) for client, names in by_client.values()))
        for room in (room for names in touched for room in names):
            self.changed(room)
