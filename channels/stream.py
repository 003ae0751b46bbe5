"""Redis room streams: seq, epoch and history per room, and publishing (the `Publisher` features see).

Publishing (any process: web, worker, a test) is one Lua call (`lua/publish.lua`) that,
atomically in Redis, assigns the room's next `seq`, splices it into the already-encoded JSON,
appends the result to the room's history and PUBLISHes it once; one call carries all of an
event's rooms (`publish_many`). So seq grows by exactly 1 per
event whichever process publishes, and history and live delivery always agree. If the room's
counter or history was lost (a Redis restart without persistence), the room gets a new epoch
and its seq starts again.

Redis layout, `<p>` being the configured prefix and `{room}` a cluster hash tag:
- `<p>:room:{room}:meta` hash `epoch`, `seq`; `<p>:room:{room}:history` list of
  `<13-digit ms> <type> <json>`, trimmed to the last `history_events`, keeping anything younger
  than `history_s` seconds.
- channel `<p>:room:{room}`: `<epoch> <seq> <published_at> <type> <json>`; channel
  `<p>:control`: `Disconnect` control messages (JSON).
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from channels.backend import BrokerUnavailable, Cursor, Disconnect
from channels.envelope import Envelope
from channels.metrics import Metrics
from channels.protocol import Event


def _lua(name: str) -> str:
    return resources.files("channels").joinpath("lua", name).read_text()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _no_layouts(room: str) -> tuple[int, int]:
    return (0, 0)


@functools.cache
def event_kind(event_type: type[Event]) -> str:
    """An event type's tag as history and the channel carry it (no spaces: fields are space-separated)."""
    return str(event_type.__struct_config__.tag).replace(" ", "_")


def room_channel(prefix: str, room: str) -> bytes:
    """The pub/sub channel of `room` (tests count its subscribers with PUBSUB NUMSUB)."""
    return f"{prefix}:room:{{{room}}}".encode()


def control_channel(prefix: str) -> bytes:
    return f"{prefix}:control".encode()


class RedisStream:
    """Room streams in one Redis: publish, cursor, and the cross-process `Disconnect` message."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        metrics: Metrics | None = None,
        history_events: int = 1000,
        history_s: int = 600,
        key_ttl_s: int = 86400,
        max_replay: int = 1000,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.metrics = metrics if metrics is not None else Metrics()
        self.history_events = history_events
        self.history_s = history_s
        self.key_ttl_s = key_ttl_s
        self.max_replay = max_replay
        """A `since` further back than this gets a snapshot: replaying more would overflow the send queue."""
        self._publish_script = redis.register_script(_lua("publish.lua"))
        self._cursor_script = redis.register_script(_lua("cursor.lua"))
        self._control = control_channel(prefix)
        self.generations: Callable[[str], tuple[int, int]] = _no_layouts
        """Room -> (oldest layout generation its epoch here may have begun in, current generation).

        Set when rooms are spread over several Redis servers (`channels.shards.Layouts`): an epoch
        that began before the room's current stay on this Redis is a stale copy and is replaced."""

    def _meta_key(self, room: str) -> str:
        return f"{self.prefix}:room:{{{room}}}:meta"

    def _history_key(self, room: str) -> str:
        return f"{self.prefix}:room:{{{room}}}:history"

    def channel(self, room: str) -> bytes:
        return room_channel(self.prefix, room)

    async def publish(self, event: Event) -> int:
        """Send `event` to everyone in `event.room` on every server process; returns its seq.

        Call it after the change the event describes is committed, so that a snapshot read by a
        joiner that sees this seq already contains it. Raises a `redis` error if Redis is down.
        """
        return (await self.publish_many((event,)))[0]

    async def publish_many(self, events: Sequence[Event]) -> list[int]:
        """`publish` every event in one Lua call (one round trip), in the order given; returns their seqs.

        An event that concerns several rooms (an `ask`: the meeting, its moderation room and the
        asker's room) costs one round trip and one script run instead of one per room. The
        script numbers, stores and publishes them one after another, exactly as single publishes
        would. Every room must live on this Redis (`channels.sharding.ShardedStream` groups them).
        """
        if not events:
            return []
        keys: list[Any] = []
        args: list[Any] = [self.history_events, self.history_s * 1000, self.key_ttl_s, f"{time.time():.6f}"]
        kinds: list[str] = []
        for event in events:
            room = event.room
            if not room:
                raise ValueError("an event needs a room")
            kind = event_kind(type(event))
            kinds.append(kind)
            keys += (self._meta_key(room), self._history_key(room))
            fresh_epoch = secrets.token_hex(8)
            args += (msgspec.json.encode(event), fresh_epoch, self.channel(room), kind, *self.generations(room))
        try:  # EVALSHA straight away: redis-py's Script call costs more than the command (a Protocol isinstance)
            seqs = await self.redis.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self._publish_script.sha, len(keys), *keys, *args
            )
        except NoScriptError:  # Redis restarted and forgot it: nothing ran; the Script loads it and runs it
            seqs = await self._publish_script(keys=keys, args=args)
        published = self.metrics.published
        for kind in kinds:
            published.labels(kind).inc()
        return [int(seq) for seq in seqs]

    async def disconnect_user(
        self,
        user_id: str,
        room_prefix: str | None,
        code: int,
        *,
        credentials: Iterable[str] | None = None,
        except_credentials: Iterable[str] = (),
        reason: str = "",
    ) -> None:
        """Close, on every server process, the matching sockets of `user_id` with `code`.

        With `room_prefix`, only sockets that joined a room in it: a room is in `room_prefix` when
        it equals it or starts with it followed by `:` (so `meeting:<id>` covers
        `meeting:<id>:moderation`). With `credentials`, only sockets opened with one of them
        (`Identity.credential`); sockets opened with one of `except_credentials` are spared.
        `user_id="*"` means every user (then `room_prefix` or `credentials` is required).
        Best effort: a process whose pub/sub connection is down at that instant misses it (the
        gateway's periodic credential check bounds how long a revoked credential's socket lives).
        """
        message = disconnect_message(user_id, room_prefix, code, credentials, except_credentials, reason)
        await self.redis.publish(self._control, msgspec.json.encode(message))

    async def cursor(self, room: str, since: int | None = None, epoch: str | None = None) -> Cursor:
        """The room's epoch and seq and, if `since` is still covered by history, the events after it.

        `epoch=None` with a `since` trusts the client that it means the current epoch.
        """
        try:
            raw = await self._cursor_script(
                keys=[self._meta_key(room), self._history_key(room)],
                args=[
                    -1 if since is None else since,
                    epoch or "",
                    secrets.token_hex(8),
                    self.key_ttl_s,
                    self.max_replay,
                    *self.generations(room),
                ],
            )
        except (RedisError, OSError) as err:
            raise BrokerUnavailable(f"redis: {type(err).__name__}") from err
        room_epoch, seq, recovered, entries = _text(raw[0]), int(raw[1]), bool(int(raw[2])), raw[3]
        events: list[Envelope] = []
        if recovered and since is not None:
            for offset, entry in enumerate(entries):
                _, kind, data = bytes(entry).split(b" ", 2)
                events.append(Envelope(room, room_epoch, since + 1 + offset, kind.decode(), data, None))
        return Cursor(room, room_epoch, seq, recovered, events)


def disconnect_message(
    user_id: str,
    room_prefix: str | None,
    code: int,
    credentials: Iterable[str] | None,
    except_credentials: Iterable[str],
    reason: str,
) -> Disconnect:
    """The `Disconnect` for `disconnect_user`'s arguments (shared by every `Stream`)."""
    if user_id == "*" and room_prefix is None and credentials is None:
        raise ValueError("disconnecting every user needs a room_prefix or credentials")
    return Disconnect(
        user_id=user_id,
        code=int(code),  # a `Close` value is an int subclass, which msgspec does not encode
        room_prefix=room_prefix,
        credentials=None if credentials is None else list(credentials),
        except_credentials=list(except_credentials),
        reason=reason,
    )
