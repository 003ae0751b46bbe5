"""docs/benchmarks.md's peers table from a `peers` result file.

python -m benchmarks.peers.markdown benchmarks/results/peers-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TIMES = "\u00d7"

NAMES = {
    "roomcast": "roomcast",
    "baseline": "bare `websockets.broadcast()`",
    "socketio-py": "python-socketio",
    "litestar": "Litestar channels",
    "socketio-node": "Node.js Socket.IO",
}


def number(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def render(result: dict[str, Any]) -> str:
    lines = [
        "| room | target | delivered frames/s | server µs/frame (min-max) | frames/s per server core | "
        "per core vs roomcast | 50% load: events/s, p50 / p99 ms | idle RSS/conn KiB | saturation CPU % (servers / "
        "load generator / other) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in result["table"]:
        name = NAMES.get(t["target"], t["target"])
        lines.append(
            f"| {t['members']:,} | {name} | {number(t['frames_per_s'], '{:,.0f}')} "
            f"| {number(t['cpu_us_per_frame'], '{:.2f}')} ({t['cpu_us_spread'] or '-'}) "
            f"| {number(t['frames_per_server_core_s'], '{:,.0f}')} | {number(t.get('vs_roomcast'), '{:.2f}' + TIMES)} "
            f"| {number(t['half_events_per_s'], '{:.0f}')}: {number(t['p50_ms'], '{:.1f}')} / "
            f"{number(t['p99_ms'], '{:.1f}')} | {number(t['rss_per_conn_kib'], '{:.1f}')} "
            f"| {number(t['server_cpu_pct'], '{:.0f}')} / {number(t['client_cpu_pct'], '{:.0f}')} / "
            f"{number(t['other_cpu_pct'], '{:.0f}')} |"
        )
    summary = result["summary"]
    lines.append("")
    for key, info in summary.items():
        if key.startswith("room_") and info.get("roomcast_vs_baseline_rounds"):
            rounds = info["roomcast_vs_baseline_rounds"]
            shown = "; ".join(
                f"{r['delivered_ratio']:.2f}{TIMES} delivered, {r['cpu_per_frame_ratio']:.2f}{TIMES} CPU/frame "
                f"(other CPU {r['roomcast_other_cpu_pct']:.0f}% / {r['baseline_other_cpu_pct']:.0f}%)"
                for r in rounds
                if r["delivered_ratio"] and r["cpu_per_frame_ratio"]
            )
            lines.append(f"- roomcast / baseline, room of {key.removeprefix('room_')}, round by round: {shown}")
    for kind, cost in summary.get("cost_split", {}).items():
        lines.append(
            f"- {NAMES.get(kind, kind)}: server CPU per event ≈ {cost['per_event_us']:,.0f} µs "
            f"+ {cost['per_delivery_us']:.2f} µs per member (least squares over the room sizes)"
        )
    code = result.get("code", {})
    machine = code.get("machine", {})
    versions = {**code.get("stack", {}), **summary.get("versions", {})}
    lines.append(f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}")
    la = summary.get("load_average_start", [0, 0, 0])
    lines.append(
        f"- machine: {machine.get('model name', '?')}, {machine.get('nproc', '?')} CPUs; load average at the start "
        f"{la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}; commit `{code.get('commit', '?')[:7]}`"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    for path in argv:
        print(render(json.loads(Path(path).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
