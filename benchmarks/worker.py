"""One client process of the load generator: many WebSocket clients on one event loop.

The coordinator (`benchmarks.load`) starts several of these with `multiprocessing`, sends each
commands through a pipe and reads its live counters from shared memory (`Slot` indexes one
worker's row). The hot path is `on_message`: one msgspec decode into a struct that names only
the fields it reads, a seq check, and a latency sample when the event carries a bench stamp.

A bench stamp is a question text `bench <idx> <time_ns>`: every process is on one machine, so
`time.time_ns()` at the receiver minus the stamp is the publish-to-receive latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import resource
import threading
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

import httpx
import msgspec

from benchmarks import polls_worker as polls
from benchmarks.wsclient import Client, open_client

COALESCE_S = 0.15
"""Two `question.votes` of one question closer than this break the spec's 200 ms (50 ms of jitter allowed)."""
SAMPLE_CAP = 3_000_000
"""Latency samples one worker keeps; past it every other sample is dropped (stride doubles)."""


class Slot:
    """Indexes into one worker's row of the shared counters."""

    CONNECTED = 0
    JOINED = 1
    FRAMES = 2
    BYTES = 3
    BENCH = 4
    COMPLETED = 5
    ERRORS = 6
    DISCONNECTS = 7
    RECONNECTED = 8
    ERROR_FRAMES = 9
    GAPS = 10
    DUPS = 11
    RESYNCS = 12
    SENT = 13
    VOTE_EVENTS = 14
    NOT_RECOVERED = 15
    POLL_EVENTS = 16
    REACTION_EVENTS = 17
    WIDTH = 18


class Q(msgspec.Struct):
    id: str = ""
    text: str = ""
    votes: int = 0
    status: str = ""


class Snap(msgspec.Struct):
    questions: list[Q] = []


class PollResults(msgspec.Struct):
    respondents: int = 0
    counts: dict[str, int] = {}


class Msg(msgspec.Struct):
    type: str
    room: str | None = None
    seq: int | None = None
    ref: str | None = None
    question: Q | None = None
    question_id: str | None = None
    votes: int | None = None
    epoch: str | None = None
    recovered: bool | None = None
    snapshot: Snap | None = None
    code: str | None = None
    message: str | None = None
    poll_id: str | None = None
    results: PollResults | None = None
    counts: dict[str, int] | None = None
    """`reactions {counts}`."""


decode_msg = msgspec.json.Decoder(Msg).decode
encode = msgspec.json.Encoder().encode
PUBLIC = ("live", "answered")


class State:
    """Per-connection state, kept on `client.user`."""

    __slots__ = (
        "client",
        "epoch",
        "index",
        "joined",
        "poll_events",
        "probe",
        "questions",
        "reaction_events",
        "reactions",
        "results",
        "seq",
        "token",
        "track",
        "urls",
        "voted",
        "waiters",
    )

    def __init__(self, index: int, urls: list[str], token: str, track: bool) -> None:
        self.index = index
        self.urls = urls
        self.token = token
        self.seq: int | None = None
        self.epoch: str | None = None
        self.track = track
        self.probe = False
        self.joined = False
        self.client: Client | None = None
        """The connection this state belongs to now; frames of an abandoned attempt are ignored."""
        self.questions: dict[str, int] = {}
        self.voted: set[str] = set()
        self.waiters: dict[str, asyncio.Future[Msg]] = {}
        self.results: PollResults | None = None
        """The last `poll.results` this client holds (benchmarks/polls.py)."""
        self.poll_events: list[float] = []
        self.reaction_events: list[float] = []
        self.reactions: dict[str, int] = {}


class Worker:
    def __init__(self, wid: int, cfg: dict[str, Any], pipe: Connection, shm: Any) -> None:
        self.wid = wid
        self.cfg = cfg
        self.pipe = pipe
        self.shm = shm
        self.base = wid * Slot.WIDTH
        self.kind: str = cfg["client"]
        self.room: str = cfg["room"]
        self.track: bool = cfg.get("track", False)
        self.reconnect: bool = cfg.get("reconnect", False)
        self.c = [0] * Slot.WIDTH
        self.clients: list[Client] = []
        self.pending: dict[int, int] = {}
        self.members = 0
        self.lat = array("I")
        self.stride = 1
        self.nsample = 0
        self.refs = itertools.count()
        self.closing = False
        self.last_reconnect = 0.0
        self.error_samples: list[str] = []
        self.tokens: list[str] = []
        self.watched: State | None = None
        """One client whose `question.votes` spacing is checked against the spec's 200 ms."""
        self.vote_seen: dict[str, float] = {}
        self.too_close = 0
        self.close_codes: dict[int, int] = {}
        self.sent_at: dict[str, tuple[str, float]] = {}
        self.reply_ms: dict[str, list[float]] = {"ask": [], "vote": [], "respond": [], "react": []}
        self.closest = 1.0
        self.commands: asyncio.Queue[Any] = asyncio.Queue()
        from benchmarks.peers.wire import wire_for  # it builds on this module's Msg

        self.wire = wire_for(cfg.get("wire"), self.room)
        """A peer's protocol (benchmarks/peers/wire.py); None for roomcast's own."""

    # --- hot path -----------------------------------------------------------------------

    def on_message(self, client: Client, payload: bytes) -> None:
        c = self.c
        c[Slot.FRAMES] += 1
        c[Slot.BYTES] += len(payload)
        try:
            if self.wire is None:
                m = decode_msg(payload)
            else:
                peer = self.wire.decode(client, payload)
                if peer is None:
                    return
                m = peer
        except msgspec.DecodeError:
            c[Slot.ERRORS] += 1
            return
        st: State = client.user
        if st.client is not client:
            return  # a connection attempt given up on (its join timed out); a newer one is live
        kind = m.type
        if m.seq is not None and st.seq is not None and m.room == self.room and kind != "joined":
            if m.seq == st.seq + 1:
                st.seq = m.seq
            elif m.seq <= st.seq:
                c[Slot.DUPS] += 1
            else:
                c[Slot.GAPS] += m.seq - st.seq - 1
                st.seq = m.seq
        if kind == "question.created":
            q = m.question
            if q is None or m.room != self.room:
                return
            if q.text.startswith("bench "):
                self._stamp(q.text)
            if st.track:
                st.questions[q.id] = q.votes
        elif kind == "question.votes":
            c[Slot.VOTE_EVENTS] += 1
            if st is self.watched and m.question_id:
                now = time.monotonic()
                gap = now - self.vote_seen.get(m.question_id, -1.0)
                if gap < COALESCE_S:
                    self.too_close += 1
                    self.closest = min(self.closest, gap)
                self.vote_seen[m.question_id] = now
            if st.track and m.room == self.room and m.question_id in st.questions:
                st.questions[m.question_id] = m.votes or 0
        elif kind == "question.updated":
            if st.track and m.room == self.room and m.question is not None:
                if m.question.status in PUBLIC:
                    st.questions[m.question.id] = m.question.votes
                else:
                    st.questions.pop(m.question.id, None)
        elif kind == "question.removed":
            if st.track and m.room == self.room and m.question_id:
                st.questions.pop(m.question_id, None)
        elif kind == "poll.results" and m.room == self.room:
            c[Slot.POLL_EVENTS] += 1
            st.results = m.results
            st.poll_events.append(time.monotonic())
        elif kind == "reactions" and m.room == self.room:
            c[Slot.REACTION_EVENTS] += 1
            st.reaction_events.append(time.monotonic())
            for reaction, count in (m.counts or {}).items():
                st.reactions[reaction] = st.reactions.get(reaction, 0) + count
        elif kind == "joined" and m.room == self.room:
            if m.ref is None:
                c[Slot.RESYNCS] += 1
            self._joined(st, m)
            self._resolve(st, m)
        elif kind == "reply" and m.ref is not None and m.ref in self.sent_at:
            kind_of, sent = self.sent_at.pop(m.ref)
            self.reply_ms[kind_of].append((time.monotonic() - sent) * 1000)
            return
        elif kind == "error":
            if m.ref is not None:
                self.sent_at.pop(m.ref, None)
            c[Slot.ERROR_FRAMES] += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{m.code}: {m.message}")
            self._resolve(st, m)
        elif kind in ("welcome", "reply", "pong", "joined"):
            self._resolve(st, m)

    def _stamp(self, text: str) -> None:
        parts = text.split(" ", 3)
        now = time.time_ns()
        c = self.c
        c[Slot.BENCH] += 1
        self.nsample += 1
        if self.nsample % self.stride == 0:
            self.lat.append(min(max(now - int(parts[2]), 0) // 1000, 0xFFFFFFFF))
            if len(self.lat) >= SAMPLE_CAP:
                self.lat = self.lat[::2]
                self.stride *= 2
        idx = int(parts[1])
        seen = self.pending.get(idx, 0) + 1
        if seen >= self.members:
            self.pending.pop(idx, None)
            c[Slot.COMPLETED] += 1
            self.shm[self.base + Slot.COMPLETED] = c[Slot.COMPLETED]
        else:
            self.pending[idx] = seen

    def _joined(self, st: State, m: Msg) -> None:
        if m.recovered and st.seq is not None:
            pass  # the missed events follow, from st.seq + 1
        else:
            if m.ref is not None and st.seq is not None:
                self.c[Slot.NOT_RECOVERED] += 1
            st.seq = m.seq
        st.epoch = m.epoch
        if st.track and not m.recovered:
            st.questions = {q.id: q.votes for q in (m.snapshot.questions if m.snapshot else []) if q.status in PUBLIC}

    def _resolve(self, st: State, m: Msg) -> None:
        key = m.ref if m.ref is not None else m.type
        fut = st.waiters.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(m)

    def on_close(self, client: Client, code: int) -> None:
        self.c[Slot.CONNECTED] -= 1
        st: State = client.user
        if st is not None and st.client is not client:
            return
        if st is not None and st.joined:
            st.joined = False
            self.c[Slot.JOINED] -= 1
            self.members -= 1
        for fut in st.waiters.values() if st is not None else ():
            if not fut.done():
                fut.set_exception(ConnectionError(f"closed {code}"))
        if not self.closing and not (st is not None and st.probe):
            self.c[Slot.DISCONNECTS] += 1
            self.close_codes[code] = self.close_codes.get(code, 0) + 1
            if self.reconnect and st is not None:
                asyncio.get_running_loop().create_task(self._reconnect(client, st))

    # --- setup and actions ---------------------------------------------------------------

    async def request(
        self, client: Client, frame: dict[str, Any], answer: str | None = None, timeout: float = 30.0
    ) -> Msg:
        st: State = client.user
        key = answer or f"w{self.wid}r{next(self.refs)}"
        if answer is None:
            frame["ref"] = key
        fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        st.waiters[key] = fut
        client.send(encode(frame))
        return await asyncio.wait_for(fut, timeout)

    async def connect(self, st: State, url: str, since: int | None = None, join: bool = True) -> Client:
        client = await open_client(self.kind, url, self.on_message, self.on_close)
        client.user = st
        st.client = client
        self.c[Slot.CONNECTED] += 1
        try:
            return await self._auth_join(client, st, since, join)
        except BaseException:
            st.client = None
            client.abort()
            raise

    async def _auth_join(self, client: Client, st: State, since: int | None, join: bool) -> Client:
        if self.wire is not None:
            await peer_handshake(self.wire, client, st.waiters, self.room if join else None)
            if join:
                self.c[Slot.JOINED] += 1
                self.members += 1
                st.joined = True
            return client
        welcome = await self.request(client, {"type": "auth", "token": st.token}, answer="welcome")
        if welcome.type != "welcome":
            raise RuntimeError(f"auth answered {welcome.type} {welcome.code}")
        if not join:
            return client
        frame: dict[str, Any] = {"type": "join", "room": self.room}
        if since is not None:
            frame["since"] = since
            frame["epoch"] = st.epoch
        joined = await self.request(client, frame)
        if joined.type != "joined":
            raise RuntimeError(f"join answered {joined.type} {joined.code}: {joined.message}")
        self.c[Slot.JOINED] += 1
        self.members += 1
        st.joined = True
        return client

    async def guest_tokens(self, count: int) -> list[str]:
        if not self.cfg.get("join_code"):
            return ["baseline"] * count
        sem = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=self.cfg["http"], timeout=60) as http:

            async def one(i: int) -> str:
                async with sem:
                    body = {"join_code": self.cfg["join_code"], "display_name": f"guest {self.wid}-{i}"}
                    problem = ""
                    for attempt in range(5):
                        try:
                            r = await http.post("/api/v1/meetings/join", json=body)
                        except httpx.HTTPError as err:  # e.g. a keep-alive connection closed under us
                            problem = f"{type(err).__name__}: {err}"
                        else:
                            if r.status_code == 200:
                                return str(r.json()["guest_token"])
                            problem = f"{r.status_code} {r.text[:200]}"
                        await asyncio.sleep(0.2 * (attempt + 1))
                    raise RuntimeError(f"join: {problem}")

            return await asyncio.gather(*(one(i) for i in range(count)))

    async def setup(self, params: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        urls: list[str] = self.cfg["urls"]
        indexes: list[int] = params["indexes"]
        if len(self.tokens) < len(indexes):
            self.tokens = await self.guest_tokens(len(indexes))
        tokens = self.tokens[: len(indexes)]
        rest_done = time.monotonic()
        sem = asyncio.Semaphore(params.get("concurrency", 100))
        failures: list[str] = []

        async def one(i: int, token: str) -> None:
            order = urls[i % len(urls) :] + urls[: i % len(urls)]
            st = State(i, order, token, self.track)
            async with sem:
                try:
                    self.clients.append(await self.connect(st, order[0]))
                except Exception as err:
                    self.c[Slot.ERRORS] += 1
                    if len(failures) < 5:
                        failures.append(f"{type(err).__name__}: {err}")

        await asyncio.gather(*(one(i, t) for i, t in zip(indexes, tokens, strict=True)))
        if self.clients and self.watched is None:
            self.watched = self.clients[0].user
        return {
            "ok": len(self.clients),
            "failures": failures,
            "seconds": time.monotonic() - started,
            "rest_seconds": rest_done - started,
        }

    async def probe(self, params: dict[str, Any]) -> dict[str, Any]:
        """Open, use and close `count` extra connections: `auth` only, `join` fresh, or `join_since` (recovery)."""
        mode, count = params["mode"], params["count"]
        live = [c for c in self.clients if not c.closed and c.user.seq is not None]
        failures = 0
        for i in range(count):
            st = State(-1, self.cfg["urls"], self.tokens[i % len(self.tokens)], False)
            st.probe = True
            since = None
            if mode == "join_since" and live:
                st.seq, st.epoch = live[0].user.seq, live[0].user.epoch
                since = st.seq
            try:
                client = await self.connect(st, st.urls[i % len(st.urls)], since=since, join=mode != "auth")
            except Exception:
                failures += 1
                continue
            client.close()
        await asyncio.sleep(0.2)
        return {"count": count, "failures": failures}

    async def _reconnect(self, old: Client, st: State) -> None:
        for attempt in range(20):
            url = st.urls[(attempt + 1) % len(st.urls)]
            try:
                client = await self.connect(st, url, since=st.seq)
            except Exception:
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0) * (0.5 + random.random()))
                continue
            self.clients = [client if c is old else c for c in self.clients]
            self.c[Slot.RECONNECTED] += 1
            self.last_reconnect = time.time()
            return
        self.c[Slot.ERRORS] += 1

    async def townhall(self, params: dict[str, Any]) -> dict[str, Any]:
        """Asks and votes at this worker's share of the rates, round-robin over its clients."""
        asks_s, votes_s, duration = params["asks_per_s"], params["votes_per_s"], params["duration"]
        start = time.monotonic()
        asked = voted = 0
        ask_rr = itertools.cycle(range(len(self.clients)))
        vote_rr = itertools.cycle(range(len(self.clients)))
        while (elapsed := time.monotonic() - start) < duration:
            while asked < asks_s * elapsed:
                client = self.clients[next(ask_rr)]
                idx = self.wid * 1_000_000 + asked
                text = f"bench {idx} {time.time_ns()} w{self.wid}"
                self.sent_at[f"a{idx}"] = ("ask", time.monotonic())
                client.send(encode({"type": "ask", "room": self.room, "text": text, "ref": f"a{idx}"}))
                asked += 1
            while voted < votes_s * elapsed:
                client = self.clients[next(vote_rr)]
                st: State = client.user
                choices = [q for q in itertools.islice(st.questions, 0, 64) if q not in st.voted]
                voted += 1
                if choices:
                    qid = random.choice(choices)
                    st.voted.add(qid)
                    ref = f"v{self.wid}-{voted}"
                    self.sent_at[ref] = ("vote", time.monotonic())
                    frame = {"type": "vote", "room": self.room, "question_id": qid, "up": True, "ref": ref}
                    client.send(encode(frame))
            self.c[Slot.SENT] = asked + voted
            await asyncio.sleep(0.01)
        for _ in range(300):  # replies still on their way (bounded: 30 s)
            if not self.sent_at:
                break
            await asyncio.sleep(0.1)
        return {
            "asked": asked,
            "vote_ticks": voted,
            "voted": sum(len(c.user.voted) for c in self.clients),
            "reply_ms": self.reply_ms,
            "unanswered": len(self.sent_at),
        }

    def verify(self, expected: dict[str, int]) -> dict[str, Any]:
        bad = missing = extra = wrong = 0
        example = ""
        for client in self.clients:
            got: dict[str, int] = client.user.questions
            if got != expected:
                bad += 1
                missing += len(expected.keys() - got.keys())
                extra += len(got.keys() - expected.keys())
                wrong += sum(1 for k in expected.keys() & got.keys() if got[k] != expected[k])
                if not example:
                    diff = [(k, got.get(k), v) for k, v in expected.items() if got.get(k) != v][:3]
                    example = f"client {client.user.index}: {len(got)} vs {len(expected)} questions; {diff}"
        return {
            "clients": len(self.clients),
            "bad": bad,
            "missing": missing,
            "extra": extra,
            "wrong": wrong,
            "example": example,
            "votes_too_close": self.too_close,
            "closest_vote_events_s": self.closest,
            "vote_events_watched": len(self.vote_seen),
        }

    async def leave_close(self) -> dict[str, Any]:
        self.closing = True
        failures = 0

        async def one(client: Client) -> None:
            nonlocal failures
            try:
                await self.request(client, {"type": "leave", "room": self.room}, timeout=20)
            except Exception:
                failures += 1
            client.close()

        sem = asyncio.Semaphore(200)

        async def bounded(client: Client) -> None:
            async with sem:
                await one(client)

        await asyncio.gather(*(bounded(c) for c in self.clients))
        for _ in range(100):
            if self.c[Slot.CONNECTED] <= 0:
                break
            await asyncio.sleep(0.05)
        self.clients = []
        self.closing = False
        return {"leave_failures": failures}

    # --- plumbing ----------------------------------------------------------------------------

    def _publish_counters(self) -> None:
        for i, v in enumerate(self.c):
            self.shm[self.base + i] = v

    async def _ticker(self) -> None:
        while True:
            self._publish_counters()
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def read_commands() -> None:  # a thread: the pipe must stay blocking for large answers
            while True:
                try:
                    command = self.pipe.recv()
                except (EOFError, OSError):
                    command = ("quit", None)
                loop.call_soon_threadsafe(self.commands.put_nowait, command)
                if command[0] == "quit":
                    return

        threading.Thread(target=read_commands, daemon=True).start()
        ticker = loop.create_task(self._ticker())
        try:
            while True:
                name, params = await self.commands.get()
                try:
                    result = await self._command(name, params)
                except Exception as err:  # answer instead of dying: the coordinator reports it
                    result = {"error": f"{type(err).__name__}: {err}"}
                if name == "quit":
                    self.pipe.send(("quit", None))
                    return
                self._publish_counters()
                self.pipe.send((name, result))
        finally:
            ticker.cancel()

    async def _command(self, name: str, params: Any) -> Any:
        result: Any = None
        if name == "setup":
            result = await self.setup(params)
        elif name == "members":
            self.members = len([c for c in self.clients if not c.closed])
            self.pending.clear()
        elif name == "lat_reset":
            self.lat, self.stride, self.nsample = array("I"), 1, 0
        elif name == "lat":
            result = {"lat": self.lat.tobytes(), "stride": self.stride}
        elif name == "townhall":
            result = await self.townhall(params)
        elif name == "verify":
            result = self.verify(params)
        elif name == "respond":
            result = await polls.respond(self, params)
        elif name == "react":
            result = await polls.react(self, params)
        elif name == "poll_state":
            result = polls.poll_state(self, params)
        elif name == "reaction_state":
            result = polls.reaction_state(self, params)
        elif name == "leave_close":
            result = await self.leave_close()
        elif name == "abort_all":
            self.closing = True
            for client in self.clients:
                client.abort()
            self.clients = []
        elif name == "probe":
            result = await self.probe(params)
        elif name == "seqs":
            seqs = [c.user.seq for c in self.clients if not c.closed]
            result = {"n": len(seqs), "min": min(seqs, default=None), "max": max(seqs, default=None)}
        elif name == "info":
            result = {
                "last_reconnect": self.last_reconnect,
                "errors": self.error_samples,
                "close_codes": self.close_codes,
            }
        elif name == "quit":
            self.closing = True
            for client in self.clients:
                client.close()
            await asyncio.sleep(0.2)
        return result


async def peer_handshake(wire: Any, client: Client, waiters: dict[str, Any], room: str | None) -> None:
    """A peer's connect (if it has one) and join of `room` (if given), each awaited like roomcast's."""
    from benchmarks.peers.wire import JOIN_REF

    loop = asyncio.get_running_loop()
    steps = [("welcome", wire.auth_frame())]
    if room is not None:
        steps.append((JOIN_REF, wire.join_frame(room)))
    for key, frame in steps:
        if frame is None:
            continue
        fut: asyncio.Future[Msg] = loop.create_future()
        waiters[key] = fut
        client.send(frame)
        answer = await asyncio.wait_for(fut, 30)
        if answer.type == "error":
            raise RuntimeError(f"{key} answered {answer.code}: {answer.message}")


def raise_nofile() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def worker_main(wid: int, cfg: dict[str, Any], pipe: Connection, shm: Any) -> None:
    """Entry point of a client process."""
    import uvloop

    from server.collector import raise_thresholds

    raise_nofile()
    # Each client process holds thousands of sockets and parses every frame: with CPython's default
    # thresholds its full collections paused it for 250-440 ms every few seconds, which the town hall
    # counted as delivery latency. The server's thresholds let short-lived frames die by reference
    # counting before they are promoted, so full collections are rare.
    raise_thresholds()
    uvloop.run(Worker(wid, cfg, pipe, shm).run())
