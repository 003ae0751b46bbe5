"""Plot latency percentiles against offered load from `latency` scenario results (needs `.[bench]`).

    python -m benchmarks.plot benchmarks/results/latency-*.json -o docs/benchmarks-latency.png

Every file adds its curves (one per target: roomcast, baseline); several runs of one target are
drawn as separate thin lines so the noise of this machine stays visible.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/benchmarks-latency.png"))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    styles = {"p50_ms": "o-", "p95_ms": "s--", "p99_ms": "^-."}
    colors = {"roomcast": "tab:blue", "baseline": "tab:gray"}
    for path in args.results:
        data: dict[str, Any] = json.loads(path.read_text())
        for target, curve in data.get("summary", {}).get("curves", {}).items():
            points = [p for p in curve if p.get("p50_ms") is not None]
            if not points:
                continue
            for ax, xkey in zip(axes, ("offered_events_per_s", "offered_fraction"), strict=True):
                xs = [p[xkey] * (100 if xkey == "offered_fraction" else 1) for p in points]
                for key, style in styles.items():
                    ax.plot(
                        xs,
                        [p[key] for p in points],
                        style,
                        color=colors.get(target, "tab:red"),
                        alpha=0.8,
                        label=f"{target} {key.removesuffix('_ms')}",
                    )
    members = {json.loads(p.read_text()).get("args", {}).get("members") for p in args.results}
    room = f"one {members.pop():,}-member room" if len(members) == 1 else "one room"
    axes[0].set_xlabel(f"offered load (events/s into {room})")
    axes[1].set_xlabel("offered load (% of the target's own saturation rate)")
    axes[0].set_ylabel("publish-to-receive latency (ms, log)")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].axhline(10, color="green", lw=0.8, ls=":")
    axes[1].axhline(50, color="orange", lw=0.8, ls=":")
    axes[1].axhline(200, color="red", lw=0.8, ls=":")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.suptitle("roomcast publish-to-receive latency under load (dotted: 10, 50, 200 ms targets)", y=0.98)
    fig.legend(unique.values(), unique.keys(), loc="upper center", ncol=6, fontsize=8, bbox_to_anchor=(0.5, 0.93))
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(args.output)


if __name__ == "__main__":
    main()
