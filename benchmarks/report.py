"""Turning measurements into the one table the load generator prints, and its JSON twin."""

from __future__ import annotations

import json
import sys
import time
from array import array
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

COLUMNS: list[tuple[str, str, str]] = [
    # (key, header, format)
    ("phase", "phase", "{}"),
    ("connections", "conns", "{:.0f}"),
    ("events_per_s", "events/s", "{:.1f}"),
    ("frames_per_s", "frames/s", "{:.0f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p95_ms", "p95 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("max_ms", "max ms", "{:.1f}"),
    ("server_fanout_p99_ms", "srv fan-out p99 ms", "{:.1f}"),
    ("server_rss_mib", "srv RSS MiB", "{:.0f}"),
    ("rss_per_conn_kib", "RSS/conn KiB", "{:.1f}"),
    ("cpu_us_per_frame", "srv µs/frame", "{:.2f}"),
    ("server_cpu_pct", "srv CPU %", "{:.0f}"),
    ("client_cpu_pct", "cli CPU %", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
    ("disconnects", "disconn", "{:.0f}"),
]


def percentiles(samples_us: array[int] | list[int]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latency samples in microseconds."""
    data = sorted(samples_us)
    if not data:
        return {"samples": 0}
    n = len(data)

    def at(q: float) -> float:
        return data[min(n - 1, int(q * n))] / 1000

    return {"samples": n, "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": data[-1] / 1000}


def bucket_quantile(cumulative: dict[float, float], q: float) -> float | None:
    """Quantile in ms from Prometheus cumulative buckets (seconds), interpolated inside the bucket."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower * 1000
            inside = count - below
            fraction = (rank - below) / inside if inside else 1.0
            return (lower + (bound - lower) * fraction) * 1000
        lower, below = bound, count
    return None


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]] = COLUMNS) -> str:
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            line.append("-" if value is None else fmt.format(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = []
    for n, line in enumerate(cells):
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write(scenario: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{scenario}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


class Progress:
    """One line, rewritten in place on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, text: str, every: float = 0.5) -> None:
        now = time.monotonic()
        if now - self.last < (every if self.tty else max(every, 5.0)):
            return
        self.last = now
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text[:200])
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()

    def note(self, text: str) -> None:
        self.done()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
