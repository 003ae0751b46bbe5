"""A rolling SIGTERM restart of both server processes while 50 clients ask and vote.

Each client acts like the reference client: on a close it reconnects (to the other process if its
own is gone), rejoins with `since` and `epoch`, and resends an unacknowledged ask with the same
`client_id` and an unacknowledged vote as it was. Afterwards every acknowledged ask is stored once,
every vote count is exact, no client saw a gap in the room's seq (events lost: 0), and every
client ends at the room's last seq.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from server.settings import Settings
from tests.support import ServerProcess, eventually
from tests.wsclient import Person, World, WsClient, connect

CLIENTS = 50
ASKS = 6
SEEDS = 5


class Attendee:
    def __init__(self, person: Person, urls: list[str], room: str, seeds: list[str], index: int) -> None:
        self.person, self.urls, self.room, self.seeds = person, urls, room, seeds
        self.server = index % 2
        self.todo: list[tuple[str, str]] = [("ask", f"{person.id}-{n}") for n in range(ASKS)]
        self.todo += [("vote", seed) for seed in seeds]
        random.Random(index).shuffle(self.todo)
        self.acked: dict[str, str] = {}
        self.last_seq: int | None = None
        self.epoch: str | None = None
        self.gaps: list[tuple[int | None, int]] = []
        self.reconnects = 0
        self.downtimes: list[float] = []
        self.done = asyncio.Event()

    def _track(self, ws: WsClient, start: int) -> int:
        """Check the room's seq over frames[start:]; returns the next index to look at."""
        frames = ws.frames
        for frame in frames[start:]:
            if frame.get("room") != self.room:
                continue
            if frame["type"] == "joined":
                self.epoch = frame["epoch"]
                if not frame["recovered"] or self.last_seq is None:
                    self.last_seq = frame["seq"]  # a snapshot: the state up to seq
                elif frame["seq"] < self.last_seq:
                    self.gaps.append((self.last_seq, frame["seq"]))
            elif "seq" in frame:
                if self.last_seq is not None and frame["seq"] != self.last_seq + 1:
                    self.gaps.append((self.last_seq, frame["seq"]))
                self.last_seq = frame["seq"]
        return len(frames)

    async def run(self, stop: asyncio.Event) -> None:
        closed_at: float | None = None
        while True:
            try:
                async with connect(self.urls[self.server], self.person.token, timeout=10) as ws:
                    await ws.join(self.room, since=self.last_seq, epoch=self.epoch, timeout=15)
                    if closed_at is not None:
                        self.downtimes.append(time.monotonic() - closed_at)
                        closed_at = None
                    seen = self._track(ws, 0)
                    while self.todo:
                        kind, target = self.todo[0]
                        if kind == "ask":
                            frame = {
                                "type": "ask",
                                "room": self.room,
                                "text": f"Question {target}",
                                "client_id": target,
                            }
                        else:
                            frame = {"type": "vote", "room": self.room, "question_id": target, "up": True}
                        answer = await ws.request(frame, timeout=15)
                        seen = self._track(ws, seen)
                        if answer["type"] == "reply":
                            if kind == "ask":
                                self.acked[target] = answer["data"]["question"]["id"]
                            self.todo.pop(0)
                        elif answer["code"] not in ("unavailable", "rate_limited"):
                            raise RuntimeError(f"refused: {answer}")
                        await asyncio.sleep(random.uniform(0.4, 1.2))
                    self.done.set()
                    while not stop.is_set():
                        await asyncio.sleep(0.1)
                        seen = self._track(ws, seen)
                        if ws.close_code is not None:
                            raise ConnectionError(ws.close_code)
                    return
            except RuntimeError:
                raise
            except Exception:
                if closed_at is None:
                    closed_at = time.monotonic()
                self.reconnects += 1
                self.server = 1 - self.server  # the other process, as a balancer would pick
                await asyncio.sleep(random.uniform(0.05, 0.3))


def _restart(server: ServerProcess) -> ServerProcess:
    """SIGTERM (sockets get 1012, the process drains and exits), then the same process again."""
    assert server.stop(timeout=30) == 0, server.log()[-3000:]
    return ServerProcess(env=server.env, port=server.port, args=server.args).start().wait_ready(60)


async def test_rolling_restart_under_load_loses_nothing(
    start_servers: Callable[..., list[ServerProcess]], database_url: str, settings: Settings
) -> None:
    servers = start_servers(2, ROOMCAST_ASK_PER_MINUTE="1000", ROOMCAST_VOTE_PER_MINUTE="1000")
    world = World(database_url, settings)
    owner = await world.user("Olive")
    meeting_id = await world.meeting(owner, title="Rolling restart")
    room = f"meeting:{meeting_id}"
    connection = await asyncpg.connect(database_url)
    try:
        seeds = []
        for n in range(SEEDS):
            seeds.append(uuid.uuid4())
            await connection.execute(
                "INSERT INTO questions (id, meeting, author, text, status) VALUES ($1, $2, $3, $4, 'live')",
                seeds[-1], uuid.UUID(meeting_id), uuid.UUID(owner.id), f"Seed {n}",
            )  # fmt: skip
    finally:
        await connection.close()
    urls = [server.ws_url for server in servers]
    people = [await world.participant(meeting_id, await world.user(f"P{n}")) for n in range(CLIENTS)]
    attendees = [Attendee(p, urls, room, [str(s) for s in seeds], n) for n, p in enumerate(people)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop)) for a in attendees]
    restarted: list[ServerProcess] = []
    try:
        await asyncio.sleep(2)
        started = time.monotonic()
        for server in servers:
            restarted.append(await asyncio.to_thread(_restart, server))
        restart_s = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*(a.done.wait() for a in attendees)), 180)
        await asyncio.sleep(2)  # the last coalesced vote events arrive
        async with connect(restarted[0].ws_url, owner.token) as checker:
            joined = await checker.join(room)
            await asyncio.sleep(2)  # its own presence change reaches everyone
            final_seq = max([joined["seq"], *(e["seq"] for e in checker.events(room))])
            # every client catches up with the room's latest seq (on a loaded machine, give it time)
            await eventually(lambda: all((a.last_seq or 0) >= final_seq for a in attendees), timeout=30)
            final_seq = max(a.last_seq or 0 for a in attendees)
            await eventually(lambda: all(a.last_seq == final_seq for a in attendees), timeout=30)
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for server in restarted:
            await asyncio.to_thread(server.stop)

    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT client_id, count(*) AS n FROM questions WHERE meeting = $1 AND client_id IS NOT NULL "
            "GROUP BY client_id",
            uuid.UUID(meeting_id),
        )
        votes = await connection.fetch("SELECT id, votes FROM questions WHERE id = ANY($1::uuid[])", seeds)
        stored_votes = await connection.fetchval("SELECT count(*) FROM votes WHERE question = ANY($1::uuid[])", seeds)
    finally:
        await connection.close()
    acked = {client_id for a in attendees for client_id in a.acked}
    assert len(acked) == CLIENTS * ASKS
    assert {r["client_id"] for r in rows} == acked and all(r["n"] == 1 for r in rows)  # each ask stored once
    assert sorted(r["votes"] for r in votes) == [CLIENTS] * SEEDS and stored_votes == CLIENTS * SEEDS
    lost: dict[str, Any] = {a.person.name: a.gaps for a in attendees if a.gaps}
    assert not lost, lost  # events lost: 0
    # every client recovered to the end: all at one seq, the room's latest (the checker's own leave may add one)
    assert all((a.last_seq or 0) >= final_seq for a in attendees), sorted(a.last_seq or 0 for a in attendees)
    assert sum(a.reconnects for a in attendees) >= CLIENTS  # every client lived through at least one restart
    recovery = max(d for a in attendees for d in a.downtimes)
    print(
        f"rolling restart of 2 processes in {restart_s:.1f} s, {CLIENTS} clients: "
        f"{sum(a.reconnects for a in attendees)} reconnects, events lost 0, longest recovery {recovery:.2f} s"
    )
