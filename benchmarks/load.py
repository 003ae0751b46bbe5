"""roomcast's load generator: start the servers, drive a scenario, print one table.

    python -m benchmarks.load fanout            # scenario 2: saturation, roomcast vs baseline
    python -m benchmarks.load SCENARIO --help   # every scenario's knobs

Scenarios (issue 8): idle, fanout, latency, townhall, storm, churn, redis; and `peers` (issue 19:
roomcast beside python-socketio, Litestar channels and Node.js Socket.IO). Each starts its own
servers (`roomcast serve` processes on a fresh database and Redis prefix, or baseline processes),
opens real WebSocket clients in several client processes, prints a progress line on stderr, then
one table on stdout and the path of a JSON file with every figure (benchmarks/results/).
See benchmarks/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.harness import Harness, running
from benchmarks.wsclient import CLIENT_KINDS


def targets(args: argparse.Namespace) -> list[str]:
    return ["roomcast", "baseline"] if args.target == "both" else [args.target]


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# --- scenario 2: fan-out saturation --------------------------------------------------------------


async def saturate(
    h: Harness, args: argparse.Namespace, rows: list[dict[str, Any]], repeats: int, first: int = 0
) -> list[dict[str, Any]]:
    """`repeats` delivery-paced saturation phases, numbered from `first` + 1; a warm-up before the first of all."""
    pub = h.publisher or await h.open_publisher(args.publishers)
    if first == 0:
        h.phase = "warm-up"
        await pub.windowed(args.window, args.warmup)
        await pub.drain()
    out = []
    for rep in range(first, first + repeats):
        h.phase = f"saturation {rep + 1}/{getattr(args, 'repeats', repeats)}"
        await h.latencies()
        profiling = h.profile_start(f"{h.fleet.kind}-fanout", args.duration) if args.profile and rep == 0 else []
        a = h.snapshot()
        ok = await pub.windowed(args.window, args.duration)
        b = h.snapshot()
        row = h.phase_row(f"saturation #{rep + 1}", a, b, await h.latencies())
        if profiling:
            row["profile"] = await h.profile_finish(profiling)
        row["stalled"] = not ok
        row["publisher_errors"] = dict(pub.errors)
        rows.append(row)
        out.append(row)
        await pub.drain()
    return out


def rotated(items: list[str], by: int) -> list[str]:
    """`items` starting at index `by` (wrapping): who goes first changes every round."""
    by %= len(items)
    return items[by:] + items[:by]


async def scenario_fanout(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    """Both targets run at once; their repeats alternate (roomcast, baseline, then baseline, roomcast...),
    so a change in the machine's load during the run reaches both alike (issue 19)."""
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    kinds = targets(args)
    sat: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    async with contextlib.AsyncExitStack() as stack:
        harnesses: dict[str, Harness] = {}
        for kind in kinds:
            harnesses[kind] = h = await stack.enter_async_context(running(kind, args, progress))
            h.start_workers()
            h.rss0 = h.fleet.rss()
            summary[f"{kind}_connect"] = await h.connect_clients(args.members)
            if kind == "roomcast":
                summary["roomcast_writes"] = h.roomcast_writes()
        for rep in range(args.repeats):
            for kind in rotated(kinds, rep):
                sat[kind] += await saturate(harnesses[kind], args, rows, 1, first=rep)
    for kind, phases in sat.items():
        summary[f"{kind}_frames_per_s"] = median([r["frames_per_s"] for r in phases])
        summary[f"{kind}_events_per_s"] = median([r["events_per_s"] for r in phases])
        summary[f"{kind}_cpu_us_per_frame"] = median([r["cpu_us_per_frame"] for r in phases])
        summary[f"{kind}_frames_per_server_core_s"] = median([r["frames_per_server_core_s"] for r in phases])
    checks = []
    if summary.get("roomcast_frames_per_s") and summary.get("baseline_frames_per_s"):
        ratio = summary["roomcast_frames_per_s"] / summary["baseline_frames_per_s"]
        summary["ratio_to_baseline"] = ratio
        summary["ratio_to_baseline_by_round"] = [
            r["frames_per_s"] / b["frames_per_s"] for r, b in zip(sat["roomcast"], sat["baseline"], strict=True)
        ]
        summary["cpu_per_frame_ratio_by_round"] = [
            r["cpu_us_per_frame"] / b["cpu_us_per_frame"]
            for r, b in zip(sat["roomcast"], sat["baseline"], strict=True)
            if r["cpu_us_per_frame"] and b["cpu_us_per_frame"]
        ]
        checks.append(("delivered rate >= 0.5x baseline (aim 0.8x)", ratio >= 0.5, f"{ratio:.2f}x"))
    if "roomcast_writes" in summary:
        checks.append(direct_check(summary["roomcast_writes"]))
    if summary.get("roomcast_cpu_us_per_frame"):
        us = summary["roomcast_cpu_us_per_frame"]
        checks.append(("<= 25 us server CPU per delivered frame (stretch 15)", us <= 25, f"{us:.1f} us"))
    return {"rows": rows, "summary": summary, "checks": checks}


def direct_check(writes: dict[str, int]) -> tuple[str, bool, str]:
    """A PASS/MISS line for `Harness.roomcast_writes()`: the figures mean little if roomcast fell back to ASGI."""
    ok = writes["asgi"] == 0 and writes["direct"] > 0
    return ("roomcast writes fan-out frames directly", ok, f"{writes['direct']} direct, {writes['asgi']} through ASGI")


# --- scenario 3: latency under load --------------------------------------------------------------


async def scenario_latency(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"curves": {}}
    checks = []
    for kind in targets(args):
        async with running(kind, args, progress) as h:
            h.start_workers()
            h.rss0 = h.fleet.rss()
            await h.connect_clients(args.members)
            sat_rows = await saturate(h, args, rows, 1)
            sat_rate = args.rate or sat_rows[0]["events_per_s"]
            summary[f"{kind}_saturation_events_per_s"] = sat_rate
            curve = []
            assert h.publisher is not None
            for fraction in args.fractions:
                h.phase = f"{fraction:.0%} of saturation"
                await h.latencies()
                a = h.snapshot()
                skipped = await h.publisher.paced(fraction * sat_rate, args.duration, args.max_in_flight)
                b = h.snapshot()
                row = h.phase_row(f"{fraction:.0%} load", a, b, await h.latencies())
                row.update(offered_fraction=fraction, offered_events_per_s=fraction * sat_rate, skipped=skipped)
                rows.append(row)
                curve.append(row)
                await h.publisher.drain()
            summary["curves"][kind] = [
                {
                    k: r.get(k)
                    for k in ("offered_events_per_s", "offered_fraction", "p50_ms", "p95_ms", "p99_ms", "max_ms")
                }
                for r in curve
            ]
            if kind == "roomcast":
                for r in curve:
                    if abs(r["offered_fraction"] - 0.5) < 1e-9:
                        checks.append(("50%: p50 <= 10 ms", r.get("p50_ms", 1e9) <= 10, f"{r.get('p50_ms')} ms"))
                        checks.append(("50%: p99 <= 50 ms", r.get("p99_ms", 1e9) <= 50, f"{r.get('p99_ms')} ms"))
                    if abs(r["offered_fraction"] - 0.8) < 1e-9:
                        checks.append(("80%: p99 <= 200 ms", r.get("p99_ms", 1e9) <= 200, f"{r.get('p99_ms')} ms"))
    return {"rows": rows, "summary": summary, "checks": checks}


# --- scenario 1: idle room -------------------------------------------------------------------------


async def scenario_idle(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    checks = []
    for kind in targets(args):
        async with running(kind, args, progress) as h:
            h.start_workers()
            await asyncio.sleep(2)
            h.rss0 = h.fleet.rss()
            h.phase = "connecting"
            summary[f"{kind}_connect"] = await h.connect_clients(args.clients)
            h.phase = "settling"
            await asyncio.sleep(args.settle)
            h.phase = f"idle {args.duration:.0f}s"
            a = h.snapshot()
            while h.snapshot()["t"] - a["t"] < args.duration:
                h.show()
                await asyncio.sleep(0.5)
            b = h.snapshot()
            row = h.phase_row("idle", a, b, {})
            rows.append(row)
            if kind == "roomcast":
                kib = row["rss_per_conn_kib"]
                checks.append(("<= 48 KiB server RSS per connection", kib <= 48, f"{kib:.1f} KiB"))
                cpu = row["server_cpu_pct"]
                checks.append(("idle server CPU <= 10% of one core", cpu <= 10, f"{cpu:.1f}%"))
    return {"rows": rows, "summary": summary, "checks": checks}


# --- dispatch --------------------------------------------------------------------------------------


def add_common(p: argparse.ArgumentParser, **defaults: Any) -> None:
    """The options every scenario has; `defaults` overrides some per scenario (argparse parents share them)."""
    p.add_argument("--target", choices=["roomcast", "baseline", "both"], default="roomcast")
    p.add_argument("--servers", type=int, default=2, help="server processes")
    p.add_argument("--processes", type=int, default=2, help="client processes")
    p.add_argument("--client", choices=CLIENT_KINDS, default="raw", help="client implementation")
    p.add_argument("--log-level", default="info", help="ROOMCAST_LOG_LEVEL for the servers")
    p.add_argument(
        "--redis", choices=["shared", "own"], default="shared", help="127.0.0.1:6379, or a private redis-server"
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (a roomcast-bench-* temp folder)")
    p.add_argument("--keep-db", action="store_true", help="keep the benchmark database afterwards")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument(
        "--publishers", type=int, default=16, help="publisher connections per server (roomcast allows 20 frames/s each)"
    )
    p.add_argument(
        "--uvicorn-ws",
        choices=["websockets", "websockets-sansio", "wsproto"],
        default=None,
        help="serve roomcast with this uvicorn --ws (`roomcast serve --ws`)",
    )
    p.add_argument("--profile", action="store_true", help="py-spy every server process in the first measured phase")
    p.add_argument("--window", type=int, default=8, help="events in flight when pacing by delivery")
    p.set_defaults(**defaults)


def parser() -> argparse.ArgumentParser:
    from benchmarks import polls, scenarios, shards
    from benchmarks.peers import run as peers

    top = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="scenario", required=True)

    p = sub.add_parser(
        "idle",
        help="1: N idle joined connections: RSS and CPU per connection",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=20000)
    p.add_argument("--settle", type=float, default=5.0)
    add_common(p, run=scenario_idle, duration=30.0)

    p = sub.add_parser(
        "fanout",
        help="2: fan-out saturation, delivery-paced, vs the baseline",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    add_common(p, run=scenario_fanout, target="both")

    p = sub.add_parser(
        "latency",
        help="3: latency at fractions of the saturation rate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--fractions", type=lambda s: [float(x) for x in s.split(",")], default=[0.25, 0.5, 0.8, 1.0])
    p.add_argument("--rate", type=float, default=0.0, help="saturation events/s to use instead of measuring it")
    p.add_argument("--max-in-flight", type=int, default=400)
    add_common(p, run=scenario_latency)

    scenarios.add_parsers(sub, add_common)
    polls.add_parsers(sub, add_common)
    shards.add_parser(sub, add_common)
    peers.add_parser(sub, add_common)
    return top


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the shared work tree had uncommitted changes to the server."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "server", "channels", "migrations"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        return {}
    return {
        "commit": commit,
        "server_changes_uncommitted": ", ".join(line[3:] for line in dirty.splitlines()),
        "stack": stack_versions(),
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU model and count, clock, kernel, load average at the start."""
    out: dict[str, Any] = {"nproc": os.cpu_count(), "kernel": os.uname().release, "load_average": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu MHz") and key not in out:
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def stack_versions() -> dict[str, str]:
    """Versions of what the servers and the load generator run on (another uvicorn can change the result)."""
    out = {"python": sys.version.split()[0]}
    for dist in ("uvicorn", "websockets", "uvloop", "httptools", "litestar", "msgspec", "redis", "asyncpg"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


async def stoppable(scenario: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run `scenario`; SIGTERM (e.g. from `timeout`) cancels it like Ctrl-C, so its servers, database and keys go."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await scenario


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    progress = report.Progress()
    version = code_version()  # what the servers start from
    try:
        result = asyncio.run(stoppable(args.run(args, progress)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress.note("interrupted")
        return 130
    progress.done()
    print(report.table(result["rows"]))
    if result.get("extra"):
        print()
        print(result["extra"])
    for name, ok, value in result.get("checks", []):
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value}")
    for key, value in result.get("summary", {}).items():
        if isinstance(value, float):
            print(f"{key}: {value:.2f}")
        elif isinstance(value, list) and value and all(isinstance(v, float) for v in value):
            print(f"{key}: {', '.join(f'{v:.2f}' for v in value)}")
        elif isinstance(value, dict) and "p50_ms" in value:
            print(f"{key}: p50 {value['p50_ms']:.1f} ms, p99 {value['p99_ms']:.1f} ms, max {value['max_ms']:.1f} ms")
    result["args"] = {k: v for k, v in vars(args).items() if k != "run"}
    result["code"] = version
    result["checks"] = [{"target": n, "met": ok, "value": v} for n, ok, v in result.get("checks", [])]
    print(f"json: {report.write(args.scenario, result)}")
    return 0 if all(c["met"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
