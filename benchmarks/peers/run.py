"""`python -m benchmarks.load peers`: roomcast, the baseline and the peers in one sitting, one table.

For each room size, every target is started at once (`--servers` processes each, on one Redis),
with its own client processes, its publishers (who ask without being members of the room) and
`N` members joined to one room. Then, target after target:

1. idle: server RSS per member connection (RSS now minus RSS before the members connected, after
   the publishers had warmed the servers up), and idle server CPU;
2. saturation, `--repeats` rounds: the publisher keeps `window` events in flight until every
   member has them (as `fanout` does); the order of the targets rotates every round, so drift
   in the machine's load hits all of them alike;
3. 50% load: open loop at half of the target's own median saturation rate; p50/p99 are
   publish-to-receive over every member.

The table has one row per room size and target (medians over the rounds); the per-phase rows,
the per-round ratios of roomcast to the baseline, the machine's load and steal time and the
peers' versions go to the JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
from typing import Any

from benchmarks import report
from benchmarks.harness import Harness, running
from benchmarks.load import direct_check, rotated
from benchmarks.peers.fleets import PEERS, versions
from benchmarks.servers import PortRange, RoomcastFleet

TARGETS = ["roomcast", "baseline", *PEERS]

COLUMNS: list[tuple[str, str, str]] = [
    ("members", "room", "{:.0f}"),
    ("target", "target", "{}"),
    ("events_per_s", "sat events/s", "{:.0f}"),
    ("frames_per_s", "frames/s", "{:.0f}"),
    ("cpu_us_per_frame", "srv µs/frame", "{:.2f}"),
    ("cpu_us_spread", "µs/frame min-max", "{}"),
    ("frames_per_server_core_s", "frames/s per srv core", "{:.0f}"),
    ("vs_roomcast", "per core vs roomcast", "{:.2f}x"),
    ("half_events_per_s", "50% events/s", "{:.0f}"),
    ("p50_ms", "50%: p50 ms", "{:.1f}"),
    ("p99_ms", "50%: p99 ms", "{:.1f}"),
    ("rss_per_conn_kib", "idle RSS/conn KiB", "{:.1f}"),
    ("idle_cpu_pct", "idle srv CPU %", "{:.1f}"),
    ("server_cpu_pct", "sat srv CPU %", "{:.0f}"),
    ("client_cpu_pct", "sat cli CPU %", "{:.0f}"),
    ("other_cpu_pct", "sat other CPU %", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
]


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


async def prepare(h: Harness, members: int, args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Client processes, publishers, members; then the idle row."""
    h.start_workers()
    await h.open_publisher(args.publishers, join=False)
    await asyncio.sleep(1.0)
    h.rss0 = h.fleet.rss()
    connect = await h.connect_clients(members)
    h.phase = "idle"
    await asyncio.sleep(args.settle)
    a = h.snapshot()
    while h.snapshot()["t"] - a["t"] < args.idle:
        h.show()
        await asyncio.sleep(0.2)
    row = h.phase_row(f"{members} idle", a, h.snapshot(), {})
    rows.append(row)
    out: dict[str, Any] = {"connect": connect, "idle": row}
    if isinstance(h.fleet, RoomcastFleet):
        out["roomcast_writes"] = h.roomcast_writes()
    return out


async def saturation(h: Harness, members: int, window: int, args: argparse.Namespace, rnd: int) -> dict[str, Any]:
    pub = h.publisher
    assert pub is not None
    h.phase = f"{members} saturation {rnd + 1}/{args.repeats}"
    await h.latencies()
    tag = f"{h.fleet.kind}-peers-{members}"
    profiling = h.profile_start(tag, args.duration) if args.profile and rnd == 0 and h.fleet.kind == "roomcast" else []
    a = h.snapshot()
    ok = await pub.windowed(window, args.duration)
    b = h.snapshot()
    row = h.phase_row(f"{members} saturation #{rnd + 1}", a, b, await h.latencies())
    if profiling:
        row["profile"] = await h.profile_finish(profiling)
    row.update(stalled=not ok, window=window, round=rnd + 1, publisher_errors=dict(pub.errors))
    await pub.drain()
    return row


async def half_load(h: Harness, members: int, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    pub = h.publisher
    assert pub is not None
    h.phase = f"{members} at 50% ({rate:.0f} events/s)"
    await h.latencies()
    a = h.snapshot()
    skipped = await pub.paced(rate, args.duration, args.max_in_flight)
    b = h.snapshot()
    row = h.phase_row(f"{members} 50% load", a, b, await h.latencies())
    row.update(offered_events_per_s=rate, skipped=skipped)
    await pub.drain()
    return row


def other_cpu(row: dict[str, Any]) -> float:
    """Machine CPU that was neither the servers under test nor the load generator (Redis, PostgreSQL, other users)."""
    return float(row["machine_cpu_pct"] - row["server_cpu_pct"] - row["client_cpu_pct"])


async def one_size(
    members: int, args: argparse.Namespace, progress: report.Progress, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    targets: list[str] = args.targets
    # the same frames in flight whatever the room, within roomcast's per-connection burst (60 frames)
    window = min(max(args.window, math.ceil(args.window * 1000 / members)), 30 * args.publishers * args.servers)
    info: dict[str, Any] = {"window": window, "load_average_before": os.getloadavg()}
    sat: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
    half: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
    async with contextlib.AsyncExitStack() as stack:
        harnesses: dict[str, Harness] = {}
        for kind in targets:
            harnesses[kind] = h = await stack.enter_async_context(running(kind, args, progress))
            info[kind] = await prepare(h, members, args, rows)
        for kind in targets:
            h = harnesses[kind]
            assert h.publisher is not None
            h.phase = f"{members} warm-up"
            await h.publisher.windowed(window, args.warmup)
            await h.publisher.drain()
        for rnd in range(args.repeats):
            for kind in rotated(targets, rnd):
                row = await saturation(harnesses[kind], members, window, args, rnd)
                rows.append(row)
                sat[kind].append(row)
        for rnd in range(args.latency_repeats):
            for kind in rotated(targets, rnd):
                rate = 0.5 * (median([r["events_per_s"] for r in sat[kind]]) or 0.0)
                row = await half_load(harnesses[kind], members, rate, args)
                rows.append(row)
                half[kind].append(row)
        publisher_errors = {k: dict(h.publisher.errors) if h.publisher else {} for k, h in harnesses.items()}
    info["load_average_after"] = os.getloadavg()
    if "roomcast" in sat and "baseline" in sat:
        info["roomcast_vs_baseline_rounds"] = [
            {
                "round": r["round"],
                "delivered_ratio": r["frames_per_s"] / b["frames_per_s"] if b["frames_per_s"] else None,
                "cpu_per_frame_ratio": r["cpu_us_per_frame"] / b["cpu_us_per_frame"]
                if r["cpu_us_per_frame"] and b["cpu_us_per_frame"]
                else None,
                "roomcast_us_per_frame": r["cpu_us_per_frame"],
                "baseline_us_per_frame": b["cpu_us_per_frame"],
                "roomcast_other_cpu_pct": other_cpu(r),
                "baseline_other_cpu_pct": other_cpu(b),
                "roomcast_steal_pct": r["steal_pct"],
                "baseline_steal_pct": b["steal_pct"],
            }
            for r, b in zip(sat["roomcast"], sat["baseline"], strict=True)
        ]
    table: list[dict[str, Any]] = []
    for kind in targets:
        s, h50, idle = sat[kind], half[kind], info[kind]["idle"]
        us = [r["cpu_us_per_frame"] for r in s if r["cpu_us_per_frame"]]
        table.append(
            {
                "members": members,
                "target": kind,
                "events_per_s": median([r["events_per_s"] for r in s]),
                "frames_per_s": median([r["frames_per_s"] for r in s]),
                "cpu_us_per_frame": median(list(us)),
                "cpu_us_spread": f"{min(us):.2f}-{max(us):.2f}" if us else None,
                "frames_per_server_core_s": median([r["frames_per_server_core_s"] for r in s]),
                "half_events_per_s": median([r["events_per_s"] for r in h50]),
                "p50_ms": median([r.get("p50_ms") for r in h50]),
                "p99_ms": median([r.get("p99_ms") for r in h50]),
                "rss_per_conn_kib": idle["rss_per_conn_kib"],
                "idle_cpu_pct": idle["server_cpu_pct"],
                "server_cpu_pct": median([r["server_cpu_pct"] for r in s]),
                "client_cpu_pct": median([r["client_cpu_pct"] for r in s]),
                "other_cpu_pct": median([other_cpu(r) for r in s]),
                "steal_pct": median([r["steal_pct"] for r in s]),
                "errors": sum(r["errors"] for r in s + h50) + idle["errors"] + sum(publisher_errors[kind].values()),
                "publisher_errors": publisher_errors[kind],
                "disconnects": sum(r["disconnects"] for r in s + h50),
                "stalled": sum(1 for r in s if r["stalled"]),
                "members_connected": info[kind]["connect"]["ok"],
            }
        )
    base = next((t for t in table if t["target"] == "roomcast"), None)
    for t in table:
        if base and base["frames_per_server_core_s"] and t["frames_per_server_core_s"]:
            t["vs_roomcast"] = t["frames_per_server_core_s"] / base["frames_per_server_core_s"]
    return table, info


def cost_split(table: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per target, server CPU per event as `per_event + per_delivery x members`, least squares over the room sizes.

    `per_event` is what an event costs before any delivery (for roomcast: the `ask` handler, its
    PostgreSQL and Redis calls), `per_delivery` what each member's frame adds: issue 19's "cheaper
    events" and fan-out levers, apart.
    """
    out: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(t["target"] for t in table):
        points = [
            (float(t["members"]), t["cpu_us_per_frame"] * t["members"])
            for t in table
            if t["target"] == kind and t["cpu_us_per_frame"]
        ]
        if len({x for x, _ in points}) < 2:
            continue
        mx = statistics.fmean(x for x, _ in points)
        my = statistics.fmean(y for _, y in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
        out[kind] = {"per_event_us": my - slope * mx, "per_delivery_us": slope}
    return out


def event_cost(summary: dict[str, Any], rooms: list[int]) -> dict[int, dict[str, Any]]:
    """Per room size: roomcast's server CPU per frame over the baseline's (median of the rounds), and
    what roomcast spends per event beyond the baseline, `(roomcast - baseline µs/frame) x members`.

    Both deliver the same frame to the same members in the same round, so the difference is
    what an `ask` costs roomcast before and besides delivery (the handler, PostgreSQL, Redis, the
    pub/sub hop): issue 19's "cheaper events" from one room size, without a fit.
    """
    out: dict[int, dict[str, Any]] = {}
    for members in rooms:
        rounds = summary[f"room_{members}"].get("roomcast_vs_baseline_rounds", [])
        pairs = [(r["roomcast_us_per_frame"], r["baseline_us_per_frame"]) for r in rounds]
        pairs = [(ours, theirs) for ours, theirs in pairs if ours and theirs]
        if not pairs:
            continue
        out[members] = {
            "cpu_ratio": statistics.median(ours / theirs for ours, theirs in pairs),
            "cpu_ratio_rounds": [ours / theirs for ours, theirs in pairs],
            "extra_us_per_event": statistics.median((ours - theirs) * members for ours, theirs in pairs),
        }
    return out


def checks(table: list[dict[str, Any]], summary: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Issue 19's targets that this run measures (fan-out per server core against the peers; idle RSS)."""
    out: list[tuple[str, bool, str]] = []
    for key, info in summary.items():
        if key.startswith("room_") and "roomcast_writes" in info.get("roomcast", {}):
            name, ok, value = direct_check(info["roomcast"]["roomcast_writes"])
            out.append((f"{key.removeprefix('room_')}: {name}", ok, value))
    for members, cost in summary.get("event_cost", {}).items():
        if members == 400:
            ratio = cost["cpu_ratio"]
            out.append((f"{members}: server CPU per frame <= 1.25x the baseline's", ratio <= 1.25, f"{ratio:.2f}x"))
    by = {(t["members"], t["target"]): t for t in table}
    for members in sorted({t["members"] for t in table}):
        ours = by.get((members, "roomcast"))
        if not ours or not ours["frames_per_server_core_s"]:
            continue
        if members >= 400:
            for peer, factor in (("socketio-py", 2.0), ("litestar", 2.0), ("socketio-node", 1.0)):
                theirs = by.get((members, peer))
                if theirs and theirs["frames_per_server_core_s"]:
                    ratio = ours["frames_per_server_core_s"] / theirs["frames_per_server_core_s"]
                    name = f"{members}: fan-out per server core >= {factor:g}x {peer}"
                    out.append((name, ratio >= factor, f"{ratio:.2f}x"))
        if members == max(t["members"] for t in table) and ours["rss_per_conn_kib"] is not None:
            kib = ours["rss_per_conn_kib"]
            out.append((f"{members}: idle RSS per connection <= 20 KiB", kib <= 20, f"{kib:.1f} KiB"))
    return out


async def scenario_peers(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {TARGETS}")
    if args.base_port:
        args.ports = PortRange(args.base_port, args.port_count)
    rows: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"versions": versions(), "load_average_start": os.getloadavg()}
    for members in args.rooms:
        size_table, info = await one_size(members, args, progress, rows)
        table.extend(size_table)
        summary[f"room_{members}"] = info
    summary["load_average_end"] = os.getloadavg()
    ratios = {
        members: [r["delivered_ratio"] for r in summary[f"room_{members}"].get("roomcast_vs_baseline_rounds", [])]
        for members in args.rooms
    }
    summary["cost_split"] = split = cost_split(table)
    lines = [report.table(table, COLUMNS)]
    for kind, cost in split.items():
        lines.append(
            f"{kind}: server CPU per event ~ {cost['per_event_us']:.0f} us"
            f" + {cost['per_delivery_us']:.2f} us per member"
        )
    for members, values in ratios.items():
        if values:
            shown = ", ".join(f"{v:.2f}" for v in values if v is not None)
            lines.append(f"roomcast / baseline delivered frames/s, room of {members}, round by round: {shown}")
    summary["event_cost"] = event_cost(summary, args.rooms)
    for members, cost in summary["event_cost"].items():
        lines.append(
            f"room of {members}: roomcast / baseline server CPU per frame {cost['cpu_ratio']:.2f}"
            f" (rounds {', '.join(f'{v:.2f}' for v in cost['cpu_ratio_rounds'])});"
            f" roomcast's server CPU per event beyond the baseline's ~ {cost['extra_us_per_event']:.0f} us"
        )
    la = summary["load_average_start"]
    lines.append(f"load average at start: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    result = {"rows": rows, "table": table, "summary": summary, "checks": checks(table, summary)}
    return {**result, "extra": "\n".join(lines)}


def add_parser(sub: Any, add_common: Any) -> None:
    p = sub.add_parser(
        "peers",
        help="roomcast, the baseline, python-socketio, Litestar channels and Node.js Socket.IO side by side",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--targets",
        type=lambda s: [x for x in s.split(",") if x],
        default=TARGETS,
        help=f"comma-separated, from {','.join(TARGETS)} (default: all)",
    )
    p.add_argument(
        "--rooms", type=lambda s: [int(x) for x in s.split(",")], default=[50, 400, 1000], help="room sizes (members)"
    )
    p.add_argument("--repeats", type=int, default=3, help="saturation rounds per target (interleaved)")
    p.add_argument("--latency-repeats", type=int, default=1, help="50%% load rounds per target (interleaved)")
    p.add_argument("--idle", type=float, default=3.0, help="seconds of the idle phase")
    p.add_argument("--settle", type=float, default=2.0, help="seconds after connecting before the idle phase")
    p.add_argument("--max-in-flight", type=int, default=400, help="cap of events in flight at 50%% load")
    p.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="take every server's port from BASE upwards (default: any free port)",
    )
    p.add_argument("--port-count", type=int, default=100, help="size of the --base-port range")
    add_common(p, run=scenario_peers, duration=6.0, warmup=2.0)
