"""Read-through entries in Redis that writers invalidate by bumping a version, for the reconnect path.

A WebSocket reconnect asks PostgreSQL three things: who the token stands for, how many
notifications are unread, and the user's role in the meeting being rejoined. A server that
crashes sends thousands of its clients to the other process at once, where those answers are
rarely new, so they are kept in Redis for `ENTRY_TTL_S` (issue 8: recovery inside the history
window costs no PostgreSQL).

Staleness is ruled out with versions rather than deletes. An entry records the versions of the
scopes it was read under (`user:<id>`, `meeting:<id>`); a reader fetches the entry and the
current versions in one MGET, *before* it reads PostgreSQL on a miss, and stores what it read
tagged with those versions; a writer commits and then gives the scope a new random version.
An entry built from rows read before a commit carries the version from before it and is never
used again, however the reads, the commit and the store interleave; a plain delete could be
undone by a slow reader storing what it read before the commit.

Versions are random rather than counted so that one that expired (`VERSION_TTL_S` after the
last write, far longer than any entry lives) never comes back equal to an old entry's. If a
bump fails (Redis down after the commit), entries of that scope may be served until they expire
(`ENTRY_TTL_S`); the writer logs it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

import msgspec
from redis.exceptions import RedisError

from server.services import Services

log = logging.getLogger("roomcast.cache")

ENTRY_TTL_S = 600
VERSION_TTL_S = 86_400

Versions = tuple[bytes, ...]


class _Entry(msgspec.Struct, array_like=True):
    versions: Versions
    value: bytes


_decode_entry = msgspec.msgpack.Decoder(_Entry).decode
_encode = msgspec.msgpack.Encoder().encode


def _version_key(services: Services, scope: str) -> str:
    return services.key("cachever", scope)


async def read(services: Services, name: str, scopes: Sequence[str]) -> tuple[bytes | None, Versions]:
    """The entry `name` if still valid under `scopes`, and the scopes' current versions (for `store`)."""
    raw = await services.redis.mget([services.key("cache", name), *(_version_key(services, s) for s in scopes)])
    versions = tuple(v or b"" for v in raw[1:])
    if raw[0] is None:
        return None, versions
    try:
        entry = _decode_entry(raw[0])
    except msgspec.DecodeError:
        return None, versions
    return (entry.value if entry.versions == versions else None), versions


async def store(services: Services, name: str, value: bytes, versions: Versions) -> None:
    """Keep `value` under the versions `read` returned before the rows it came from were read."""
    await services.redis.set(services.key("cache", name), _encode(_Entry(versions, value)), ex=ENTRY_TTL_S)


async def invalidate(services: Services, *scopes: str) -> None:
    """After a commit that changes what entries of `scopes` hold: every one of them is a miss from now on."""
    if not scopes:
        return
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.set(_version_key(services, scope), secrets.token_bytes(8), ex=VERSION_TTL_S)
            await pipe.execute()
    except RedisError:
        log.warning("cache.invalidate_failed", exc_info=True, extra={"scopes": ",".join(scopes[:10])})


def user_scope(user_id: object) -> str:
    return f"user:{user_id}"


def meeting_scope(meeting_id: object) -> str:
    return f"meeting:{meeting_id}"
