"""py-spy profiles of the server processes during a measured phase, summarised as text.

`load.py ... --profile` records every server process with `py-spy record --format raw` (collapsed
stacks, one line per distinct stack with its sample count) for the first measured phase, and
`summarize()` turns each file into the top functions by own time and by inclusive time.

    python -m benchmarks.profile benchmarks/results/profile-*.txt   # summarise saved profiles
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def pyspy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, output: Path, rate: int = 200) -> subprocess.Popen[bytes] | None:
    binary = pyspy()
    if binary is None:
        return None
    argv = [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate), "-f", "raw", "-o", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def summarize(path: Path, top: int = 15) -> dict[str, object]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames or frames[-1].startswith("_worker (futures/thread.py"):
            continue  # an idle thread-pool worker waiting for work
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    return {
        "samples": total,
        "own": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)] if total else [],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in inclusive.most_common(top * 2)] if total else [],
    }


def render(summary: dict[str, object]) -> str:
    lines = [f"samples: {summary['samples']}", "own time (% of samples):"]
    lines += [f"  {pct:5.1f}  {f}" for f, pct in summary["own"]]  # type: ignore[attr-defined]
    lines.append("inclusive time (% of samples):")
    lines += [f"  {pct:5.1f}  {f}" for f, pct in summary["inclusive"]]  # type: ignore[attr-defined]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for path in args.files:
        print(f"== {path}")
        print(render(summarize(path, args.top)))


if __name__ == "__main__":
    main()
