"""The shard map: jump consistent hash and FNV-1a against their reference values, and how rooms are placed."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from channels.shards import DEFAULT_SHARD, Layouts, ShardMap, fnv1a_64, jump_hash, redact_url
from server.rooms import meeting_room, moderation_room, shard_key, user_room


@pytest.mark.parametrize(
    ("key", "buckets", "bucket"),
    [
        # the reference vectors of the paper's C++ code (go-jump's and ClickHouse's tests use the same)
        (1, 1, 0),
        (42, 57, 43),
        (256, 1024, 520),
        (0xDEAD10CC, 1, 0),
        (0xDEAD10CC, 666, 361),
        (16045690984833335023, 255, 237),
    ],
)
def test_jump_hash_reference_values(key: int, buckets: int, bucket: int) -> None:
    assert jump_hash(key, buckets) == bucket


def test_jump_hash_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="at least one bucket"):
        jump_hash(1, 0)


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8)],
)
def test_fnv1a_64_reference_values(data: bytes, value: int) -> None:
    assert fnv1a_64(data) == value


def test_growing_the_list_moves_about_one_key_in_n_and_only_to_the_new_shard() -> None:
    keys = [fnv1a_64(str(uuid.UUID(int=n)).encode()) for n in range(20_000)]
    for shards in (1, 2, 3, 7):
        before = [jump_hash(k, shards) for k in keys]
        after = [jump_hash(k, shards + 1) for k in keys]
        moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        assert all(a == shards for _, a in moved), "a key only ever moves to the appended shard"
        assert abs(len(moved) / len(keys) - 1 / (shards + 1)) < 0.02
        spread = Counter(after)
        assert min(spread.values()) > len(keys) / (shards + 1) * 0.9


def test_shard_keys_follow_the_room_grammar() -> None:
    meeting, user = uuid.uuid4(), uuid.uuid4()
    assert shard_key(meeting_room(meeting)) == str(meeting)
    assert shard_key(moderation_room(meeting)) == str(meeting)
    assert shard_key(user_room(user)) == str(user)
    for other in ("lobby", "meeting:not-a-uuid", f"meeting:{str(meeting).upper()}", f"meeting:{meeting}:x", "user:"):
        assert shard_key(other) is None


def test_a_meeting_s_rooms_share_a_shard_and_other_rooms_stay_on_the_default() -> None:
    shards = ShardMap("default", ["a", "b", "c"], shard_key)
    meetings = [uuid.uuid4() for _ in range(300)]
    for meeting in meetings:
        assert shards.for_room(meeting_room(meeting)) == shards.for_room(moderation_room(meeting))
        assert shards.index(meeting_room(meeting)) == jump_hash(fnv1a_64(str(meeting).encode()), 3)
    assert set(Counter(shards.for_room(meeting_room(m)) for m in meetings)) == {"a", "b", "c"}
    assert shards.for_room("lobby") == "default"
    assert shards.index("lobby") == DEFAULT_SHARD
    assert ShardMap("default", [], shard_key).for_room(meeting_room(meetings[0])) == "default"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@h:6380/0", "redis://h:6380/0"),
        ("rediss://user:secret@h", "rediss://user@h"),
        ("unix:///run/redis.sock?db=1&password=secret", "unix:///run/redis.sock?db=1"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ],
)
def test_shard_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_layouts_date_a_room_s_stay_on_its_shard() -> None:
    layouts = Layouts(shard_key, ["b"])
    layouts.load([[], ["a", "b"], ["a", "b", "c"], ["a", "b"]])
    ids = [uuid.uuid4() for _ in range(400)]
    moved = next(m for m in ids if jump_hash(fnv1a_64(str(m).encode()), 3) == 2)  # on c during generation 2
    stayed = next(m for m in ids if jump_hash(fnv1a_64(str(m).encode()), 3) != 2)
    assert layouts.generations(meeting_room(moved)) == (3, 3)  # back from c: only an epoch begun now counts
    assert layouts.generations(moderation_room(stayed)) == (1, 3)  # on its shard since sharding began
    assert layouts.generations("lobby") == (0, 3)  # always on the default Redis
