"""Fixed-window rate limits counted in Redis, so every server process shares one count.

One Lua call per hit: increment the window's counter, start its expiry on the first hit, and
answer how long until the window ends when the limit is passed.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return ttl
end
return 0
"""


# Give back one hit of a window that is still running (never below zero, never a key without expiry).
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(redis.call('GET', KEYS[1])) > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
"""


class RateLimiter:
    """`await limiter.hit(key, limit, window_s)` -> 0 when allowed, else seconds until it is again."""

    def __init__(self, redis: Redis) -> None:
        self._hit = redis.register_script(_HIT)
        self._refund = redis.register_script(_REFUND)
        self._redis = redis

    async def hit(self, key: str, limit: int, window_s: int) -> int:
        """Count one attempt against `key`; return 0 if within `limit`, else the seconds to wait."""
        try:  # EVALSHA straight away: redis-py's Script call costs more than the command (a Protocol isinstance)
            wait = await self._redis.execute_command("EVALSHA", self._hit.sha, 1, key, limit, window_s)  # type: ignore[no-untyped-call]
        except NoScriptError:  # Redis restarted and forgot it: nothing ran; the Script loads it and runs it
            wait = await self._hit(keys=[key], args=[limit, window_s])
        return int(wait)

    async def refund(self, key: str) -> None:
        """Give back one attempt counted by `hit` whose work was refused after all (it used up nothing)."""
        await self._refund(keys=[key])
