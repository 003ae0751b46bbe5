"""How late a `meeting.starting` notification arrives after it is due, with the default settings.

One server and one `roomcast worker` (default `ROOMCAST_REMINDER_SCAN_S`=10 and
`ROOMCAST_REMINDER_LEAD_S`=600 unless overridden); the owner of N meetings, due at staggered
times over about half a minute, listens on its WebSocket. For each reminder, delay = arrival -
(starts_at - lead). Prints the median and the maximum.

    .venv/bin/python -m benchmarks.reminder_latency [--meetings 6] [--scan-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import websockets

from benchmarks.servers import ROOT, VENV_BIN, RoomcastFleet

LEAD_S = 600


async def measure(fleet: RoomcastFleet, meetings: int, spread_s: float) -> list[float]:
    server = fleet.servers[0]
    async with httpx.AsyncClient(base_url=server.http) as http:
        session = (
            await http.post(
                "/api/v1/auth/register",
                json={
                    "email": f"owner-{time.time_ns()}@bench.local",
                    "password": "bench-password",
                    "display_name": "O",
                },
            )
        ).json()
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        due: dict[str, float] = {}
        now = datetime.now(UTC)
        for n in range(meetings):
            offset = 3 + spread_s * n / max(1, meetings - 1)
            starts_at = now + timedelta(seconds=LEAD_S + offset)
            meeting = (
                await http.post(
                    "/api/v1/meetings",
                    json={"title": f"Meeting {n}", "starts_at": starts_at.isoformat().replace("+00:00", "Z")},
                    headers=headers,
                )
            ).json()
            due[meeting["id"]] = (starts_at - timedelta(seconds=LEAD_S)).timestamp()
    delays: list[float] = []
    async with websockets.connect(server.ws) as ws:
        await ws.send(json.dumps({"type": "auth", "token": session["access_token"]}))
        deadline = time.monotonic() + spread_s + 60
        while len(delays) < meetings and time.monotonic() < deadline:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                break
            if frame.get("type") == "notification" and frame["notification"]["kind"] == "meeting.starting":
                meeting_id = frame["notification"]["data"]["meeting_id"]
                delays.append(time.time() - due[meeting_id])
                print(f"  reminder {len(delays)}/{meetings}: {delays[-1]:.2f} s after due", flush=True)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=6)
    parser.add_argument("--spread-s", type=float, default=25.0, help="due times are spread over this many seconds")
    parser.add_argument("--scan-s", type=int, default=10, help="ROOMCAST_REMINDER_SCAN_S for the worker")
    args = parser.parse_args()
    fleet = RoomcastFleet(ask_per_minute=5, vote_per_minute=60, log_level="warning", extra_env={})
    fleet.env["ROOMCAST_REMINDER_SCAN_S"] = str(args.scan_s)
    fleet.env["ROOMCAST_REMINDER_LEAD_S"] = str(LEAD_S)
    worker = None
    try:
        fleet.start(1)
        worker = subprocess.Popen(
            [str(VENV_BIN / "roomcast"), "worker"], env=fleet.env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        delays = asyncio.run(measure(fleet, args.meetings, args.spread_s))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        fleet.stop()
    if not delays:
        raise SystemExit("no reminder arrived")
    print(f"\nmeeting.starting after its due time (scan every {args.scan_s} s, {len(delays)} reminders):")
    print(f"  median {statistics.median(delays):.2f} s   max {max(delays):.2f} s   min {min(delays):.2f} s")


if __name__ == "__main__":
    main()
