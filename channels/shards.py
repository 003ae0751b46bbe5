"""Which Redis a room lives on: a stable hash of the room's shard key over an ordered list of shards.

Rooms may be spread over several independent Redis servers (the room shards). A room's stream
(seq, epoch, history), presence and pub/sub channel all live on one shard, chosen as
Centrifugo's Redis engine chooses one: FNV-1a (64 bit) of the shard key, then jump consistent
hash (Lamping and Veach, https://arxiv.org/abs/1406.2294) over the number of shards. Jump hash
moves only about 1/(n+1) of the keys when an (n+1)-th shard is appended to the list, and none
between the shards that stay, as long as the list keeps its order.

The shard key is the application's business (the core knows no meetings): a `ShardKey` function
maps a room name to its key, or to None for rooms that stay on the default Redis. All rooms
with one key share a shard, so an event that concerns several of them costs one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["DEFAULT_SHARD", "Layouts", "ShardKey", "ShardMap", "fnv1a_64", "jump_hash", "redact_url"]

_MASK64: Final = (1 << 64) - 1
_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_JUMP_MULTIPLIER: Final = 2862933555777941757

DEFAULT_SHARD: Final = -1
"""`ShardMap.index` of a room that stays on the default Redis (no shard key, or no shards)."""

ShardKey = Callable[[str], "str | None"]
"""Room name -> the key that places it (rooms with one key share a shard); None: the default Redis."""

T = TypeVar("T")


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of `data` (what Centrifugo feeds to jump hash)."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _MASK64
    return value


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash: the bucket in `[0, buckets)` of the unsigned 64-bit `key`.

    The paper's C++ code, step for step: its 64-bit overflow is the mask, its double division
    is Python's float division (both IEEE 754 doubles), so every implementation agrees.
    """
    if buckets < 1:
        raise ValueError("jump hash needs at least one bucket")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def redact_url(url: str) -> str:
    """`url` without its password (in the authority or a `password=` query parameter), for logs and health.

    Everything else keeps its spelling, so operators recognise the URL they configured.
    """
    parts = urlsplit(url)
    redacted = url
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        redacted = redacted.replace(parts.netloc, f"{user}@{host}" if user else host, 1)
    if "password" in parts.query:
        kept = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
        redacted = redacted.replace("?" + parts.query, "?" + kept if kept else "", 1)
    return redacted


class ShardMap(Generic[T]):
    """Rooms to shards: `shards` in the configured order, `default` for rooms without a shard key.

    `T` is whatever one shard is to the caller (a Redis client, a stream, a pub/sub connection).
    Every process must be given the same list in the same order, or they disagree on where a room is.
    """

    def __init__(self, default: T, shards: Sequence[T], key: ShardKey) -> None:
        self.default = default
        self.shards = list(shards)
        self._key = key
        self._cache: dict[str, int] = {}

    def index(self, room: str) -> int:
        """The room's shard number in the list, or `DEFAULT_SHARD`."""
        if not self.shards:
            return DEFAULT_SHARD
        index = self._cache.get(room)
        if index is None:
            key = self._key(room)
            index = DEFAULT_SHARD if key is None else jump_hash(fnv1a_64(key.encode()), len(self.shards))
            if len(self._cache) >= 100_000:
                self._cache.clear()  # bounded: room names come from the network
            self._cache[room] = index
        return index

    def for_room(self, room: str) -> T:
        """The shard that holds `room` (the default for rooms without a shard key)."""
        index = self.index(room)
        return self.default if index == DEFAULT_SHARD else self.shards[index]

    def at(self, index: int) -> T:
        return self.default if index == DEFAULT_SHARD else self.shards[index]

    def all(self) -> list[T]:
        """The default first, then every shard, in order."""
        return [self.default, *self.shards]


class Layouts:
    """The shard lists a deployment has run with, oldest first, so that a room never continues a stale copy.

    Jump hash only ever moves rooms to an appended shard, whose copy is new. Removing or
    reordering shards moves rooms back to a shard that may still hold the copy of their stream
    they left there (keys live a day after their last use): continuing it would replay the wrong
    events. So each list gets a generation (its place in this history, kept on the default
    Redis), each epoch records the generation it began in, and an epoch that began before the
    room's current, unbroken stay on its shard is replaced by a new one (`lua/publish.lua`,
    `lua/cursor.lua`). Rooms that did not move keep their epoch, whatever else moved.
    """

    def __init__(self, key: ShardKey, current: Sequence[str]) -> None:
        self._key = key
        self.history: list[list[str]] = [list(current)]
        self._cache: dict[str, int] = {}

    @property
    def generation(self) -> int:
        return len(self.history) - 1

    def load(self, history: Sequence[Sequence[str]]) -> None:
        """The whole history as kept on the default Redis; its last entry is this process's list."""
        self.history = [list(layout) for layout in history] or self.history
        self._cache.clear()

    def _place(self, key: str | None, layout: list[str]) -> str | None:
        """Which shard (by name) holds a room with `key` under `layout`; None: the default Redis."""
        if key is None or not layout:
            return None
        return layout[jump_hash(fnv1a_64(key.encode()), len(layout))]

    def generations(self, room: str) -> tuple[int, int]:
        """(the oldest generation an epoch of `room` on its current shard may have begun in, the current one)."""
        generation = self.generation
        oldest = self._cache.get(room)
        if oldest is None:
            key = self._key(room)
            here = self._place(key, self.history[-1])
            oldest = generation
            while oldest > 0 and self._place(key, self.history[oldest - 1]) == here:
                oldest -= 1
            if len(self._cache) >= 100_000:
                self._cache.clear()
            self._cache[room] = oldest
        return oldest, generation
