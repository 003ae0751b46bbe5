"""Webhook-to-room latency of calendar sync: an event moved at the provider, until its meeting moves live.

One server and one `roomcast worker` pointed at the test fakes of Google and Microsoft
(`tests/fakes`, real HTTP, the Microsoft login over https with a throwaway CA). For each provider:
connect an account, create a meeting from an event, join the meeting room, then move the event N
times; each move makes the fake post its webhook. Latency = the `meeting.updated` frame's arrival
minus the moment the fake started posting the webhook (same machine, one monotonic clock).
Prints the median and the maximum per provider.

    .venv/bin/python -m benchmarks.calendar_latency [--moves 20] [--providers google,outlook]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from benchmarks.servers import ROOT, VENV_BIN, PortRange, RoomcastFleet, free_port
from tests.fakes import google as fake_google
from tests.fakes import microsoft as fake_microsoft
from tests.fakes import provider_environment
from tests.fakes.google import FakeGoogle, in_hours
from tests.fakes.microsoft import FakeMicrosoft
from tests.fakes.tls import TestCA, make_ca


async def connect(http: httpx.AsyncClient, headers: dict[str, str], provider: str, ca: TestCA) -> str:
    url = (await http.get(f"/api/v1/calendar/{provider}/connect", headers=headers)).json()["authorization_url"]
    callback = fake_google.approve(url) if provider == "google" else fake_microsoft.approve(url, ca)
    response = await http.get(callback.removeprefix(str(http.base_url).rstrip("/")))
    assert response.status_code == 303, response.text
    for _ in range(200):
        for item in (await http.get("/api/v1/calendar/connections", headers=headers)).json():
            if item["provider"] == provider and item["last_synced_at"]:
                await asyncio.sleep(1.0)  # let the push channel open
                return str(item["id"])
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{provider}: the first sync did not finish")


async def measure(base: str, provider: str, fake: Any, ca: TestCA, moves: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        session = (
            await http.post(
                "/api/v1/auth/register",
                json={
                    "email": f"{provider}-{time.time_ns()}@bench.local",
                    "password": "bench-pass",
                    "display_name": "O",
                },
            )
        ).json()
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        event_id = fake.add_event("Bench review", in_hours(24), in_hours(25), notify=False)
        connection_id = await connect(http, headers, provider, ca)
        meeting = (
            await http.post(
                "/api/v1/meetings",
                json={"source": {"connection_id": connection_id, "calendar_event_id": event_id}},
                headers=headers,
            )
        ).json()
    room = f"meeting:{meeting['id']}"
    latencies: list[float] = []
    async with websockets.connect(base.replace("http", "ws") + "/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": session["access_token"]}))
        await ws.send(json.dumps({"type": "join", "room": room, "ref": "j"}))
        while json.loads(await ws.recv()).get("type") != "joined":
            pass
        for n in range(moves):
            start = in_hours(26 + n)
            before = len(fake.pushes)
            await asyncio.to_thread(fake.move, event_id, start, in_hours(27 + n))
            pushed = fake.pushes[before][0]
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("type") == "meeting.updated" and frame.get("room") == room:
                    latencies.append(time.monotonic() - pushed)
                    break
            print(f"  {provider} move {n + 1}/{moves}: {latencies[-1] * 1000:.0f} ms", flush=True)
            await asyncio.sleep(0.2)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--providers", default="google,outlook")
    args = parser.parse_args()
    ca = make_ca(Path(tempfile.mkdtemp(prefix="roomcast-bench-ca-")))
    google, microsoft = FakeGoogle().start(), FakeMicrosoft(ca).start()
    fleet = RoomcastFleet(ask_per_minute=5, vote_per_minute=60, log_level="warning", extra_env={})
    port = free_port()
    fleet.ports = PortRange(port, 1)
    fleet.env.update(provider_environment(google, microsoft, ca))
    fleet.env["ROOMCAST_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    worker = None
    results: dict[str, list[float]] = {}
    try:
        fleet.start(1)
        worker = subprocess.Popen(
            [str(VENV_BIN / "roomcast"), "worker"], env=fleet.env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for provider in args.providers.split(","):
            fake = google if provider == "google" else microsoft
            results[provider] = asyncio.run(measure(base, provider, fake, ca, args.moves))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        fleet.stop()
        google.stop()
        microsoft.stop()
    print(f"\nwebhook sent -> meeting.updated in the meeting room ({args.moves} moves each):")
    for provider, values in results.items():
        print(
            f"  {provider:8} median {statistics.median(values) * 1000:.0f} ms   max {max(values) * 1000:.0f} ms"
            f"   min {min(values) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
