"""Frame rate limits per connection: a token bucket, `rate_limited` answers, then close 4429.

A client sending faster than `per_second` (after a `burst`) gets `error` `rate_limited` with
`retry_after_s` for each refused frame; `strikes` refused frames within one limited spell close
the connection with 4429. `join` frames have a bucket of their own on top: a join may build a
snapshot, the costliest answer there is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CLOSED = -1
"""`Bucket.take`: the caller kept going past its strikes; close it (4429)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """Frames per connection: a token bucket, then `strikes` refused frames before close 4429."""

    per_second: float = 20.0
    burst: int = 60
    strikes: int = 20


JOIN_LIMIT = RateLimit(per_second=2.0, burst=20, strikes=1_000_000)
"""Joins per connection (on top of the frame limit): a page opening a few rooms never meets it."""


class Bucket:
    """One connection's token bucket for one `RateLimit`."""

    __slots__ = ("_last", "_limited_until", "_strikes", "_tokens", "limit")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self._tokens = float(limit.burst)
        self._last = now
        self._limited_until = 0.0
        self._strikes = 0

    def take(self, now: float) -> int | None:
        """None if this frame may be handled; else whole seconds the client should wait, or `CLOSED`."""
        limit = self.limit
        self._tokens = min(float(limit.burst), self._tokens + (now - self._last) * limit.per_second)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        if now >= self._limited_until:
            self._strikes = 0
            self._limited_until = now + max(1.0, math.ceil((1.0 - self._tokens) / limit.per_second))
        self._strikes += 1
        if self._strikes > limit.strikes:
            return CLOSED
        return max(1, math.ceil(self._limited_until - now))
