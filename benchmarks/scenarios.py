"""Scenarios 4 to 7: town-hall Q&A, reconnect storm, churn and Redis cost (roomcast only)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from typing import Any

import asyncpg
import msgspec

from benchmarks import report
from benchmarks.harness import Harness, Publisher, running
from benchmarks.servers import PG_ADMIN_URL, RoomcastFleet, rss_bytes

PUBLIC = ["live", "answered"]


async def wait_quiet(h: Harness, quiet_s: float = 2.0, timeout: float = 60.0) -> float:
    """Wait until no client receives a frame for `quiet_s`; returns the seconds waited."""
    start = time.monotonic()
    last = h.counters()["frames"]
    since = time.monotonic()
    while time.monotonic() - start < timeout:
        await asyncio.sleep(0.1)
        h.show()
        now = h.counters()["frames"]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return time.monotonic() - start


async def vote_spacing(fleet: RoomcastFleet, room: str, seconds: float) -> dict[str, Any]:
    """`question.votes` of one question closer than 200 ms, by the publish time the broker puts in
    each pub/sub message (`epoch seq published_at kind payload`), read by a subscriber of our own:
    independent of how late the servers deliver them to clients."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(fleet.env["REDIS_URL"])
    pubsub = client.pubsub()
    await pubsub.subscribe(f"{fleet.prefix}:room:{{{room}}}")
    last: dict[str, float] = {}
    close, closest, events = 0, 1.0, 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if not message:
                continue
            parts = message["data"].split(b" ", 4)
            if len(parts) < 5 or parts[3] != b"question.votes":
                continue
            events += 1
            at = float(parts[2])
            qid = str(msgspec.json.decode(parts[4]).get("question_id"))
            if qid in last and at - last[qid] < 0.2:
                close += 1
                closest = min(closest, at - last[qid])
            last[qid] = at
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    return {"vote_events": events, "questions": len(last), "closer_than_200ms": close, "closest_ms": closest * 1000}


async def pg_waits(fleet: RoomcastFleet, seconds: float, every: float = 0.5) -> dict[str, float]:
    """What the benchmark database's backends are doing, averaged over samples: state / wait event."""
    conn = await asyncpg.connect(PG_ADMIN_URL)
    totals: dict[str, int] = {}
    samples = 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rows = await conn.fetch(
                "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'cpu') AS w FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                fleet.dbname,
            )
            samples += 1
            for r in rows:
                key = f"{r['state']} / {r['w']}"
                totals[key] = totals.get(key, 0) + 1
            await asyncio.sleep(every)
    finally:
        await conn.close()
    return {k: round(v / samples, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])} if samples else {}


def roomcast(h: Harness) -> RoomcastFleet:
    assert isinstance(h.fleet, RoomcastFleet), "this scenario runs against roomcast only"
    return h.fleet


# --- scenario 4: town-hall Q&A ---------------------------------------------------------------------


async def scenario_townhall(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    limits = {"ask_per_minute": args.ask_limit, "vote_per_minute": args.vote_limit}
    async with running("roomcast", args, progress, **limits) as h:
        fleet = roomcast(h)
        h.start_workers(track=True, reconnect=True)  # a 4008 (too slow) client comes back with since
        h.rss0 = fleet.rss()
        connect = await h.connect_clients(args.clients)
        h.phase = f"{args.asks:g} asks/s + {args.votes:g} votes/s"
        await h.latencies()
        profiling = h.profile_start("townhall", args.duration) if args.profile else []
        a = h.snapshot()
        n = len(h.pipes)
        params = {"asks_per_s": args.asks / n, "votes_per_s": args.votes / n, "duration": args.duration}
        waits = asyncio.create_task(pg_waits(fleet, args.duration))
        spacing = asyncio.create_task(vote_spacing(fleet, h.room, args.duration + 5))
        acted = await h.call("townhall", params, timeout=args.duration + 120)
        pg_wait_samples = await waits
        published_spacing = await spacing
        sent_s = time.monotonic() - a["t"]
        h.phase = "settling"
        await wait_quiet(h, quiet_s=3.0)
        b = h.snapshot()
        row = h.phase_row("town hall", a, b, await h.latencies())
        if profiling:
            row["profile"] = await h.profile_finish(profiling)
        asked = sum(r["asked"] for r in acted)
        replies = {
            kind: report.percentiles([int(ms * 1000) for r in acted for ms in r["reply_ms"][kind]])
            for kind in ("ask", "vote")
        }
        votes_cast = sum(r["voted"] for r in acted)
        row["events_per_s"] = asked / sent_s
        row["votes_per_s"] = votes_cast / sent_s
        conn = await asyncpg.connect(fleet.database_url)
        try:
            rows = await conn.fetch(
                "SELECT id::text AS id, votes FROM questions WHERE meeting = $1 AND status = ANY($2::text[])",
                uuid.UUID(h.meeting_id),
                PUBLIC,
            )
            db_votes = await conn.fetchval(
                "SELECT count(*) FROM votes v JOIN questions q ON q.id = v.question WHERE q.meeting = $1",
                uuid.UUID(h.meeting_id),
            )
        finally:
            await conn.close()
        expected = {r["id"]: r["votes"] for r in rows}
        codes: dict[int, int] = {}
        for info in await h.call("info"):
            for code, n in info["close_codes"].items():
                codes[code] = codes.get(code, 0) + n
        verdicts = await h.call("verify", expected)
        bad = sum(v["bad"] for v in verdicts)
        clients = sum(v["clients"] for v in verdicts)
        vote_events = b["counters"]["vote_events"] - a["counters"]["vote_events"]
        summary = {
            "connect": connect,
            "pg_activity_samples": pg_wait_samples,
            "published_vote_spacing": published_spacing,
            "server_closed": b["counters"]["disconnects"] - a["counters"]["disconnects"],
            "close_codes": codes,
            "reconnected": b["counters"]["reconnected"] - a["counters"]["reconnected"],
            "recovered_false": b["counters"]["not_recovered"] - a["counters"]["not_recovered"],
            "ask_reply_latency": replies["ask"],
            "vote_reply_latency": replies["vote"],
            "unanswered_frames": sum(r["unanswered"] for r in acted),
            "questions_in_db": len(expected),
            "asks_sent": asked,
            "votes_sent": votes_cast,
            "votes_in_db": db_votes,
            "clients_checked": clients,
            "clients_mismatched": bad,
            "mismatch_example": next((v["example"] for v in verdicts if v["example"]), ""),
            "missing": sum(v["missing"] for v in verdicts),
            "extra": sum(v["extra"] for v in verdicts),
            "wrong_counts": sum(v["wrong"] for v in verdicts),
            "vote_events_per_client": vote_events / clients if clients else None,
            "vote_events_per_vote": vote_events / clients / votes_cast if clients and votes_cast else None,
            "vote_events_closer_than_150ms": sum(v["votes_too_close"] for v in verdicts),
            "closest_vote_events_ms": 1000 * min(v["closest_vote_events_s"] for v in verdicts) if verdicts else None,
            "vote_events_per_client_per_s": vote_events / clients / sent_s if clients else None,
            "max_vote_events_per_client_per_s_allowed": 5 * len(expected),
        }
        checks = [
            (
                "every client ends with the DB's exact questions and counts",
                bad == 0 and clients > 0,
                f"{bad} of {clients} differ",
            ),
            (
                "question.votes published at most every 200 ms per question (broker publish times)",
                published_spacing["closer_than_200ms"] == 0,
                f"{published_spacing['closer_than_200ms']} of {published_spacing['vote_events']} closer "
                f"(closest {published_spacing['closest_ms']:.1f} ms)",
            ),
            (
                "question.votes received at most every 200 ms per question (watched clients)",
                summary["vote_events_closer_than_150ms"] == 0,
                f"{summary['vote_events_closer_than_150ms']} pairs closer than 150 ms "
                f"(closest {summary['closest_vote_events_ms']:.0f} ms); "
                f"{summary['vote_events_per_vote'] or 0:.2f} vote events per vote",
            ),
            ("ask-to-everyone p99 reported", row.get("p99_ms") is not None, f"{row.get('p99_ms')} ms"),
            (
                "no seq gaps or duplicates",
                row["gaps"] == 0 and row["dups"] == 0,
                f"{row['gaps']} gaps, {row['dups']} dups",
            ),
        ]
        return {"rows": [row], "summary": summary, "checks": checks}


# --- scenario 5: reconnect storm -------------------------------------------------------------------


# Each process asks PostgreSQL about all its sockets' credentials every ROOMCAST_CREDENTIAL_CHECK_S
# (30 s): work per process, not per reconnect, that the PostgreSQL counters below would charge to
# whichever probe it fell into (0.12-0.16 xacts "per connection" in one run of two).
STORM_ENV = {"ROOMCAST_CREDENTIAL_CHECK_S": "3600"}


async def scenario_storm(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    async with running("roomcast", args, progress, env=STORM_ENV) as h:
        fleet = roomcast(h)
        if len(fleet.servers) < 2:
            raise SystemExit("storm needs --servers 2 or more")
        h.start_workers(reconnect=True)
        connect = await h.connect_clients(args.clients)
        victim, survivors = fleet.servers[0], fleet.servers[1:]
        pub = Publisher(h, 1)
        h.publisher = pub
        pub.groups = [[await pub.open_one(s.ws, i)] for i, s in enumerate(survivors * args.publishers)]

        h.phase = "calibrating PostgreSQL cost per ask"
        c0 = await fleet.pg_settled_counters()
        sent0 = pub.sent
        await pub.paced(args.rate, args.calibrate, args.max_in_flight)
        await wait_quiet(h, 1.0)
        c1 = await fleet.pg_settled_counters()
        calibrated = max(pub.sent - sent0, 1)
        per_ask = {k: (c1[k] - c0[k]) / calibrated for k in c0}

        h.phase = "storm"
        await h.latencies()
        a = h.snapshot()
        victims = a["counters"]["connected"]
        killed_at = time.time()
        victim.kill(signal.SIGKILL)
        sent1 = pub.sent
        storm = asyncio.create_task(pub.paced(args.rate, args.duration, args.max_in_flight))
        expected = None
        deadline = time.monotonic() + max(args.duration, 30.0)
        while time.monotonic() < deadline:
            c = h.counters()
            expected = c["disconnects"]
            if expected and c["reconnected"] >= expected and storm.done():
                break
            h.show()
            await asyncio.sleep(0.1)
        await storm
        storm_asks = pub.sent - sent1
        h.phase = "settling"
        await wait_quiet(h, 3.0)
        b = h.snapshot()
        c2 = await fleet.pg_settled_counters()
        row = h.phase_row("reconnect storm", a, b, await h.latencies())
        info = await h.call("info")
        seqs = await h.call("seqs")
        last = max((i["last_reconnect"] for i in info), default=0.0)
        cb = b["counters"]
        reconnected = cb["reconnected"] - a["counters"]["reconnected"]
        delta = {k: c2[k] - c1[k] for k in c1}
        recovery = {k: delta[k] - per_ask[k] * storm_asks for k in delta}
        probes: dict[str, float] = {}
        before = c2
        for mode in ("auth", "join", "join_since"):
            h.phase = f"PostgreSQL cost of {mode}"
            answers = await h.call("probe", {"mode": mode, "count": args.probes})
            after = await fleet.pg_settled_counters()
            done = sum(x["count"] - x["failures"] for x in answers)
            probes[mode] = (after["xact_commit"] - before["xact_commit"]) / done if done else float("nan")
            probes[f"{mode}_tup_fetched"] = (after["tup_fetched"] - before["tup_fetched"]) / done if done else 0.0
            before = after
        summary = {
            "connect": connect,
            "clients_before_kill": victims,
            "disconnected": row["disconnects"],
            "reconnected": reconnected,
            "all_reconnected_after_s": last - killed_at if last else None,
            "not_recovered": cb["not_recovered"] - a["counters"]["not_recovered"],
            "resyncs": cb["resyncs"] - a["counters"]["resyncs"],
            "gaps": row["gaps"],
            "dups": row["dups"],
            "final_seq_min": min((s["min"] for s in seqs if s["min"] is not None), default=None),
            "final_seq_max": max((s["max"] for s in seqs if s["max"] is not None), default=None),
            "asks_during_storm": storm_asks,
            "pg_per_ask": per_ask,
            "pg_delta_during_storm": delta,
            "pg_attributed_to_reconnects": recovery,
            "pg_xact_per_reconnect": recovery["xact_commit"] / reconnected if reconnected else None,
            "pg_xact_per_connection": probes,
        }
        since_cost = probes["join_since"] - probes["auth"]
        took = summary["all_reconnected_after_s"]
        checks = [
            (
                "all reconnect within 10 s",
                reconnected >= row["disconnects"] > 0 and took is not None and took <= 10,
                f"{reconnected}/{row['disconnects']} in {took if took is None else round(took, 2)} s",
            ),
            (
                "0 events lost or duplicated",
                row["gaps"] == 0 and row["dups"] == 0 and summary["final_seq_min"] == summary["final_seq_max"],
                f"{row['gaps']} gaps, {row['dups']} dups, final seq "
                f"{summary['final_seq_min']}..{summary['final_seq_max']}",
            ),
            (
                "recovered with since (no snapshot)",
                summary["not_recovered"] == 0,
                f"{summary['not_recovered']} not recovered",
            ),
            (
                "recovery (join with since) costs 0 PostgreSQL transactions beyond auth",
                round(since_cost, 2) <= 0,
                f"auth {probes['auth']:.2f}, join {probes['join']:.2f}, join+since {probes['join_since']:.2f} xacts "
                f"per connection; storm {summary['pg_xact_per_reconnect']} per reconnect",
            ),
        ]
        return {"rows": [row], "summary": summary, "checks": checks}


# --- scenario 6: churn -----------------------------------------------------------------------------


async def scenario_churn(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    per_round: list[dict[str, Any]] = []
    async with running(args.target, args, progress) as h:
        fleet = h.fleet
        h.start_workers()
        await asyncio.sleep(1)
        before = {s.name: fleet.metrics(s) for s in fleet.servers}
        for rnd in range(1, args.rounds + 1):
            h.phase = f"round {rnd}/{args.rounds}"
            a = h.snapshot()
            connect = await h.connect_clients(args.clients)
            peak = fleet.rss()
            left = await h.call("leave_close")
            await asyncio.sleep(args.settle)
            b = h.snapshot()
            metrics = {s.name: _core_metrics(fleet.metrics(s)) for s in fleet.servers}
            row = h.phase_row(f"round {rnd}", a, b, {})
            row["connections"] = connect["ok"]
            row["peak_rss_mib"] = peak / 2**20
            row["rss_by_server_mib"] = {s.name: rss_bytes(s.pid) / 2**20 for s in fleet.servers}
            row["metrics_after"] = metrics
            row["leave_failures"] = sum(x["leave_failures"] for x in left)
            row["connect_seconds"] = connect["seconds"]
            if isinstance(fleet, RoomcastFleet):
                row["redis_subscriptions"] = fleet.redis_subscriptions()
            rows.append(row)
            per_round.append({"round": rnd, "rss_mib": row["server_rss_mib"], "metrics": metrics})
    first, last = rows[0]["server_rss"], rows[-1]["server_rss"]
    growth = (last - first) / first
    leftovers = {
        name: {k: v for k, v in m.items() if ("connections" in k or "rooms" in k or "subscri" in k) and v}
        for name, m in rows[-1]["metrics_after"].items()
    }
    checks = [
        ("RSS back within 5% of the first round's", growth <= 0.05, f"{growth * 100:+.1f}%"),
        (
            "no connection, room or subscriber left (/metrics)",
            not any(leftovers.values()) and any(rows[-1]["metrics_after"].values()),
            f"{leftovers or 'metrics missing'}",
        ),
    ]
    return {"rows": rows, "summary": {"before": before, "rounds": per_round}, "checks": checks}


def _core_metrics(metrics: dict[str, float]) -> dict[str, float]:
    keep = ("connections", "rooms", "subscri", "members", "sessions")
    return {k: v for k, v in metrics.items() if any(w in k for w in keep) and not k.endswith("_created")}


# --- scenario 7: Redis cost ------------------------------------------------------------------------


async def scenario_redis(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    async with running("roomcast", args, progress) as h:
        fleet = roomcast(h)
        h.start_workers()
        h.rss0 = fleet.rss()
        pub = await h.open_publisher(args.publishers)
        connected = 0
        for members in args.members:
            await h.connect_clients(members - connected, offset=connected)
            connected = members
            h.phase = f"{members} members at {args.rate:g} asks/s"
            await pub.paced(args.rate, args.warmup, args.max_in_flight)
            await wait_quiet(h, 1.0)
            await h.latencies()
            a = h.snapshot()
            await pub.paced(args.rate, args.duration, args.max_in_flight)
            await wait_quiet(h, 1.0)
            b = h.snapshot()
            row = h.phase_row(f"{members} members", a, b, await h.latencies())
            asks = b["published"] - a["published"]
            calls = row.get("redis_calls", {})
            redis_cpu_s = b["redis"]["cpu"] - a["redis"]["cpu"]
            row["asks"] = asks
            row["redis_calls_per_ask"] = {k: v / asks for k, v in calls.items()} if asks else {}
            row["redis_cpu_us_per_ask"] = redis_cpu_s / asks * 1e6 if asks else None
            row["redis_cpu_pct_at_1000_asks_s"] = redis_cpu_s / asks * 1000 * 100 if asks else None
            row["subscriptions"] = fleet.redis_subscriptions()
            rows.append(row)
    for row in rows:
        summary[row["phase"]] = {
            k: row.get(k)
            for k in (
                "events_per_s",
                "redis_cpu_pct",
                "redis_cpu_us_per_ask",
                "redis_cpu_pct_at_1000_asks_s",
                "redis_calls_per_ask",
                "subscriptions",
            )
        }
    publishes = [r["redis_calls_per_ask"].get("publish", 0) + r["redis_calls_per_ask"].get("spublish", 0) for r in rows]
    # An ask publishes question.created to three rooms: the meeting, its moderation room and the asker's own.
    checks = [
        (
            "PUBLISH per event independent of members",
            len(set(round(p, 1) for p in publishes)) == 1,
            f"{[round(p, 2) for p in publishes]} per ask (3 events per ask)",
        ),
        (
            "one subscription per room per process (or a pattern)",
            all(r["subscriptions"]["max_numsub"] <= args.servers for r in rows),
            f"{rows[-1]['subscriptions'] if rows else None}",
        ),
        (
            "Redis CPU at 1,000 events/s reported",
            bool(rows),
            f"{rows[-1].get('redis_cpu_pct_at_1000_asks_s', 0) / 3:.1f}% of a core per 1,000 events/s (extrapolated)"
            if rows
            else "-",
        ),
    ]
    return {"rows": rows, "summary": summary, "checks": checks}


def add_parsers(sub: Any, add_common: Any) -> None:
    p = sub.add_parser(
        "townhall",
        help="4: Q&A town hall; every client must match the DB",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--asks", type=float, default=20.0, help="asks per second, all clients together")
    p.add_argument("--votes", type=float, default=500.0, help="votes per second, all clients together")
    p.add_argument("--ask-limit", type=int, default=5, help="ROOMCAST_ASK_PER_MINUTE (spec default 5)")
    p.add_argument("--vote-limit", type=int, default=60, help="ROOMCAST_VOTE_PER_MINUTE (spec default 60)")
    add_common(p, run=scenario_townhall, duration=30.0)

    p = sub.add_parser(
        "storm",
        help="5: SIGKILL one of two processes; all reconnect and recover",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=10000)
    p.add_argument(
        "--rate",
        type=float,
        default=2.0,
        help="asks/s published throughout (each goes to every client: 2/s x 10,000 is 20,000 frames/s)",
    )
    p.add_argument("--calibrate", type=float, default=5.0, help="seconds of asks to measure PostgreSQL cost per ask")
    p.add_argument("--max-in-flight", type=int, default=100000)
    p.add_argument("--probes", type=int, default=50, help="connections per client process for each cost probe")
    add_common(p, run=scenario_storm, duration=10.0)

    p = sub.add_parser(
        "churn",
        help="6: rounds of connect/auth/join/leave/close; memory returns",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--settle", type=float, default=3.0)
    add_common(p, run=scenario_churn)

    p = sub.add_parser(
        "redis",
        help="7: Redis commands and CPU per event, by room size",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--members", type=lambda s: [int(x) for x in s.split(",")], default=[10, 500])
    p.add_argument("--rate", type=float, default=1000.0, help="asks/s offered (each ask is 3 events)")
    p.add_argument("--max-in-flight", type=int, default=200)
    add_common(p, run=scenario_redis, redis="own", duration=10.0, publishers=32)
