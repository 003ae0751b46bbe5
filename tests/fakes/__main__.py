"""Run both provider fakes by hand, to try roomcast's calendar sync without Google or Microsoft.

    .venv/bin/python -m tests.fakes > fakes.env &
    set -a; . ./fakes.env; set +a; .venv/bin/roomcast serve

It prints the settings (and the test-only trust: the CA bundle for the https Microsoft login,
`OAUTHLIB_INSECURE_TRANSPORT=1` for the plain-http Google fake) as `KEY=value` lines, adds a few
events to each calendar, and serves until interrupted. Move an event (by 60 minutes) with
`curl -X POST <base>/_fake/events -d '{"id": "...", "shift_minutes": 60}'`; GET lists the events.
A browser must accept the throwaway certificate of the Microsoft login page.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tests.fakes import provider_environment
from tests.fakes.google import FakeGoogle, in_hours
from tests.fakes.microsoft import FakeMicrosoft
from tests.fakes.tls import make_ca


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ca-dir", default=None, help="where the throwaway CA is written (default: a temp dir)")
    args = parser.parse_args()
    ca = make_ca(Path(args.ca_dir or tempfile.mkdtemp(prefix="roomcast-fakes-ca-")).resolve())
    google, microsoft = FakeGoogle().start(), FakeMicrosoft(ca).start()
    google.add_event("Design review", in_hours(26), in_hours(27), notify=False)
    google.add_event("Team lunch", in_hours(50), in_hours(51), notify=False)
    microsoft.add_event("Board meeting", in_hours(30), in_hours(32), notify=False)
    lines = provider_environment(google, microsoft, ca)
    for key, value in lines.items():
        print(f"{key}={value}")
    print(f"# control: {google.base}/_fake/events and {microsoft.graph.base}/_fake/events", file=sys.stderr)
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    google.stop()
    microsoft.stop()


if __name__ == "__main__":
    main()
