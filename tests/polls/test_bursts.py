"""Bursts across two server processes: exact poll totals with coalesced results, reactions summed once a second."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from tests.polls.conftest import Room, opened, respond
from tests.support import eventually
from tests.wsclient import WsClient

RESPONDENTS = 60


def spacings(ws: WsClient, predicate: object) -> list[float]:
    times = [t for f, t in zip(ws.frames, ws.arrivals, strict=True) if predicate(f)]  # type: ignore[operator]
    return [b - a for a, b in itertools.pairwise(times)]


LATE_S = 0.4
"""How late one delivery may be on a loaded machine (seen: 0.33 s, with two `poll.results` received 0.17 s apart)."""


def assert_spaced(gaps: list[float], window_s: float) -> None:
    """Events at most one per `window_s`, as received: together they span the windows between them, less one
    delivery up to `LATE_S` late (a late event shortens the gap before it), and no pair is closer than a quarter
    window. Uncoalesced events would be milliseconds apart and fail both."""
    if gaps:
        assert sum(gaps) >= window_s * len(gaps) - LATE_S, gaps
        assert min(gaps) >= window_s / 4, gaps


async def test_a_concurrent_burst_ends_on_the_exact_totals_with_coalesced_results(room: Room) -> None:
    poll = await opened(room, options=["Yes", "No", "Maybe"])
    ids = [o["id"] for o in poll["options"]]
    watchers = [
        (await room.participant("Watcher 0", server=0))[1],
        (await room.participant("Watcher 1", server=1))[1],
        await room.moderator(server=1),
    ]
    voters = [(await room.participant(f"Voter {n}", rooms=()))[1] for n in range(RESPONDENTS)]
    started = asyncio.get_running_loop().time()
    first = await asyncio.gather(
        *(ws.request(respond(room.public, poll["id"], option_ids=[ids[n % 3]])) for n, ws in enumerate(voters))
    )
    # half of them change their mind while it is open: their answer replaces the first one
    second = await asyncio.gather(
        *(ws.request(respond(room.public, poll["id"], option_ids=[ids[0]])) for ws in voters[: RESPONDENTS // 2])
    )
    elapsed = asyncio.get_running_loop().time() - started
    assert all(answer["type"] == "reply" for answer in first + second)
    expected = Counter({ids[0]: RESPONDENTS // 2})
    expected.update(ids[n % 3] for n in range(RESPONDENTS // 2, RESPONDENTS))
    exact = {"respondents": RESPONDENTS, "counts": {option: expected[option] for option in ids}}

    def last_results(ws: WsClient) -> object:
        events = ws.events(room.public, "poll.results")
        return events[-1]["results"] if events else None

    await eventually(lambda: all(last_results(ws) == exact for ws in watchers), timeout=5)
    await asyncio.sleep(1.2)  # nothing more after the exact totals
    moderation = watchers[2].events(room.moderation, "poll.results")
    assert moderation[-1]["results"] == exact
    for ws in watchers:
        assert last_results(ws) == exact
        for name in (room.public, room.moderation):
            # at most one per 500 ms per poll and room: a burst of 90 answers is a handful of events
            assert_spaced(spacings(ws, lambda f, n=name: f["type"] == "poll.results" and f["room"] == n), 0.5)
    assert len(watchers[0].events(room.public, "poll.results")) < RESPONDENTS / 3, elapsed


async def test_reactions_are_summed_across_processes_once_a_second(room: Room) -> None:
    watchers = [(await room.participant("Watcher 0", server=0))[1], (await room.participant("Watcher 1", server=1))[1]]
    senders = [(await room.participant(f"Fan {n}", rooms=()))[1] for n in range(20)]
    sent: Counter[str] = Counter()
    for round_ in range(3):
        frames = []
        for n, ws in enumerate(senders):
            reaction = "clap" if n % 4 else "love"
            frames.append(ws.request({"type": "react", "room": room.public, "reaction": reaction}))
            sent[reaction] += 1
        assert all(answer["type"] == "reply" for answer in await asyncio.gather(*frames))
        await asyncio.sleep(0.4 * round_)

    def received(ws: WsClient) -> Counter[str]:
        total: Counter[str] = Counter()
        for event in ws.events(room.public, "reactions"):
            total.update(event["counts"])
        return total

    await eventually(lambda: all(received(ws) == sent for ws in watchers), timeout=6)
    quiet_from = len(watchers[0].events(room.public, "reactions"))
    await asyncio.sleep(2.5)
    assert len(watchers[0].events(room.public, "reactions")) == quiet_from, "no reactions event in a quiet second"
    for ws in watchers:
        assert received(ws) == sent
        assert_spaced(spacings(ws, lambda f: f["type"] == "reactions"), 1.0)
        assert await room.sql("SELECT 1 FROM information_schema.tables WHERE table_name LIKE '%reaction%'") == []


async def test_reactions_are_rate_limited_per_user(room: Room) -> None:
    _, alice = await room.participant("Alice")
    _, bob = await room.participant("Bob")
    answers = [await alice.request({"type": "react", "room": room.public, "reaction": "wow"}) for _ in range(11)]
    assert [a["type"] for a in answers[:10]] == ["reply"] * 10
    assert answers[10]["code"] == "rate_limited" and 1 <= answers[10]["retry_after_s"] <= 10
    assert (await bob.request({"type": "react", "room": room.public, "reaction": "wow"}))["type"] == "reply"
    bad = await alice.request({"type": "react", "room": room.public, "reaction": "boo"})
    assert bad["code"] == "bad_request"
    assert (await alice.request({"type": "ping"}))["type"] == "pong"
