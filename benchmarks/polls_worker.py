"""The client-process side of the `poll` and `reactions` scenarios (benchmarks/polls.py).

Each command acts on one worker's clients (`benchmarks.worker.Worker`): every client answers
the poll once at a random moment of the window, or claps a few times; `poll_state` and
`reaction_state` report what the clients hold and how closely the events followed each other.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from benchmarks.worker import Worker

encode = msgspec.json.Encoder().encode


async def _spread(worker: Worker, frames: list[tuple[float, Any, dict[str, Any], str]], duration: float) -> int:
    """Send each `(at, client, frame, kind)` at its offset into the window; returns how many were sent."""
    frames.sort(key=lambda item: item[0])
    start = time.monotonic()
    sent = 0
    for at, client, frame, kind in frames:
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if client.closed:
            continue
        ref = f"{kind[0]}{worker.wid}-{sent}"
        frame["ref"] = ref
        worker.sent_at[ref] = (kind, time.monotonic())
        client.send(encode(frame))
        sent += 1
        worker.c[13] = sent  # Slot.SENT
    for _ in range(300):  # replies still on their way (bounded: 30 s)
        if not worker.sent_at:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(max(0.0, start + duration - time.monotonic()))
    return sent


async def respond(worker: Worker, params: dict[str, Any]) -> dict[str, Any]:
    """Every client answers `poll_id` once, at a random moment of `duration`: option `index % len(options)`."""
    options: list[str] = params["option_ids"]
    chosen: dict[str, int] = {}
    frames = []
    for client in worker.clients:
        option = options[client.user.index % len(options)]
        chosen[option] = chosen.get(option, 0) + 1
        frame = {"type": "respond", "room": worker.room, "poll_id": params["poll_id"], "option_ids": [option]}
        frames.append((random.random() * params["duration"], client, frame, "respond"))
    sent = await _spread(worker, frames, params["duration"])
    return {"sent": sent, "chosen": chosen, "reply_ms": worker.reply_ms["respond"], "unanswered": len(worker.sent_at)}


async def react(worker: Worker, params: dict[str, Any]) -> dict[str, Any]:
    """Every client sends `reaction` `per_client` times, at random moments of `duration`."""
    frames = []
    for client in worker.clients:
        for _ in range(params["per_client"]):
            frame = {"type": "react", "room": worker.room, "reaction": params["reaction"]}
            frames.append((random.random() * params["duration"], client, frame, "react"))
    sent = await _spread(worker, frames, params["duration"])
    return {"sent": sent, "reply_ms": worker.reply_ms["react"], "unanswered": len(worker.sent_at)}


def _closer_than(times: list[float], seconds: float) -> int:
    return sum(1 for a, b in itertools.pairwise(times) if b - a < seconds)


def _max_per_second(times: list[float]) -> int:
    best = start = 0
    for end in range(len(times)):
        while times[end] - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def poll_state(worker: Worker, expected: dict[str, Any]) -> dict[str, Any]:
    """How many clients hold exactly `expected` (`{respondents, counts}`), and how `poll.results` were spaced."""
    exact = 0
    events = []
    for client in worker.clients:
        st = client.user
        results = st.results
        if (
            results is not None
            and results.respondents == expected["respondents"]
            and results.counts == expected["counts"]
        ):
            exact += 1
        events.append(st.poll_events)
    return {
        "clients": len(worker.clients),
        "exact": exact,
        "events": sum(len(e) for e in events),
        "max_events_per_client": max((len(e) for e in events), default=0),
        "closer_than_400ms": sum(_closer_than(e, 0.4) for e in events),
        "max_per_second": max((_max_per_second(e) for e in events), default=0),
    }


def reaction_state(worker: Worker, expected: dict[str, int]) -> dict[str, Any]:
    """How many clients received exactly `expected` reactions in total, and how `reactions` events were spaced."""
    events = [client.user.reaction_events for client in worker.clients]
    return {
        "clients": len(worker.clients),
        "exact": sum(1 for client in worker.clients if client.user.reactions == expected),
        "events": sum(len(e) for e in events),
        "max_events_per_client": max((len(e) for e in events), default=0),
        "closer_than_900ms": sum(_closer_than(e, 0.9) for e in events),
        "max_per_second": max((_max_per_second(e) for e in events), default=0),
    }
