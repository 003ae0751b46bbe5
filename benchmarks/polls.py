"""Scenarios `poll` and `reactions` (issue 18): live poll answers and reaction bursts in one big room.

- `poll`: N participants answer one choice poll within `--duration` seconds (each once, at a random
  moment), spread over the server processes. Measured: the time from the last answer sent until every
  client holds the exact totals, `poll.results` frames per member (and the most in any one second:
  at most two, since results are coalesced to one per 500 ms per poll), answer reply latency and
  server CPU.
- `reactions`: the same room first idles for `--duration` seconds (reactions off), then every
  participant claps `--per-client` times within `--duration` seconds. Measured: `reactions` frames
  per member per second (at most one), whether every member received exactly the sum of all claps,
  and server CPU with reactions against the idle room.

    python -m benchmarks.load poll --clients 5000
    python -m benchmarks.load reactions --clients 5000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
import msgspec
from websockets.asyncio.client import connect

from benchmarks import report
from benchmarks.harness import Harness, running
from benchmarks.scenarios import roomcast, wait_quiet

OPTIONS = ["Roadmap", "Live demo", "Hiring", "Q&A only"]


def _api(h: Harness) -> httpx.Client:
    return httpx.Client(
        base_url=roomcast(h).servers[0].http, timeout=30, headers={"Authorization": f"Bearer {h.owner_token}"}
    )


async def owner_action(h: Harness, poll_id: str, action: str) -> dict[str, Any]:
    """`poll_action` from the owner's own socket (a presenter's laptop)."""
    async with connect(roomcast(h).servers[0].ws, open_timeout=30) as ws:
        await ws.send(msgspec.json.encode({"type": "auth", "token": h.owner_token}))
        while msgspec.json.decode(await ws.recv()).get("type") != "welcome":
            pass
        frame = {
            "type": "poll_action",
            "room": f"{h.room}:moderation",
            "poll_id": poll_id,
            "action": action,
            "ref": "1",
        }
        await ws.send(msgspec.json.encode(frame))
        while True:
            answer: dict[str, Any] = msgspec.json.decode(await ws.recv())
            if answer.get("ref") == "1":
                if answer["type"] != "reply":
                    raise RuntimeError(f"poll_action {action}: {answer}")
                return answer


async def scenario_poll(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    async with running("roomcast", args, progress) as h:
        fleet = roomcast(h)
        h.start_workers()
        h.rss0 = fleet.rss()
        connected = await h.connect_clients(args.clients)
        with _api(h) as http:
            r = http.post(
                f"/api/v1/meetings/{h.meeting_id}/polls", json={"kind": "choice", "title": "Next?", "options": OPTIONS}
            )
            r.raise_for_status()
            poll = r.json()
        await owner_action(h, poll["id"], "open")
        await wait_quiet(h, 1.0)
        h.phase = f"{args.clients} answers in {args.duration:g} s"
        a = h.snapshot()
        params = {"poll_id": poll["id"], "option_ids": [o["id"] for o in poll["options"]], "duration": args.duration}
        acted = await h.call("respond", params, timeout=args.duration + 120)
        sent_at = time.monotonic()
        with _api(h) as http:
            stored = next(
                p for p in http.get(f"/api/v1/meetings/{h.meeting_id}/polls").json()["items"] if p["id"] == poll["id"]
            )
        expected = stored["results"]
        h.phase = "waiting for the exact totals everywhere"
        exact_after: float | None = None
        states: list[dict[str, Any]] = []
        while time.monotonic() - sent_at < 30:
            states = await h.call("poll_state", expected)
            if sum(s["exact"] for s in states) == sum(s["clients"] for s in states):
                exact_after = time.monotonic() - sent_at
                break
            await asyncio.sleep(0.1)
        await wait_quiet(h, 2.0)
        states = await h.call("poll_state", expected)
        b = h.snapshot()
        row = h.phase_row("poll", a, b, {})
        clients = sum(s["clients"] for s in states)
        events = sum(s["events"] for s in states)
        replies = report.percentiles([int(ms * 1000) for r in acted for ms in r["reply_ms"]])
        summary = {
            "connect": connected,
            "answers_sent": sum(r["sent"] for r in acted),
            "respondents_stored": expected["respondents"],
            "unanswered": sum(r["unanswered"] for r in acted),
            "exact_totals_everywhere_after_s": exact_after,
            "clients_exact": sum(s["exact"] for s in states),
            "clients": clients,
            "poll_results_per_member": events / clients if clients else None,
            "max_poll_results_per_member_in_1s": max((s["max_per_second"] for s in states), default=0),
            "poll_results_closer_than_400ms": sum(s["closer_than_400ms"] for s in states),
            "respond_reply_latency": replies,
            "server_cpu_s": b["server_cpu"] - a["server_cpu"],
        }
        checks = [
            (
                "every client ends with the exact totals",
                summary["clients_exact"] == clients > 0 and expected["respondents"] == summary["answers_sent"],
                f"{summary['clients_exact']}/{clients} exact, {expected['respondents']} stored of "
                f"{summary['answers_sent']} sent, after {None if exact_after is None else round(exact_after, 2)} s",
            ),
            (
                "at most two poll.results per second per member",
                summary["max_poll_results_per_member_in_1s"] <= 2,
                f"max {summary['max_poll_results_per_member_in_1s']} in a second; "
                f"{summary['poll_results_per_member']:.1f} per member in all"
                if clients
                else "-",
            ),
        ]
        return {"rows": [row], "summary": summary, "checks": checks}


async def scenario_reactions(args: argparse.Namespace, progress: report.Progress) -> dict[str, Any]:
    async with running("roomcast", args, progress) as h:
        fleet = roomcast(h)
        h.start_workers()
        h.rss0 = fleet.rss()
        connected = await h.connect_clients(args.clients)
        await wait_quiet(h, 1.0)
        h.phase = "reactions off (the room idles)"
        a0 = h.snapshot()
        await asyncio.sleep(args.duration + 2.5)
        b0 = h.snapshot()
        off = h.phase_row("reactions off", a0, b0, {})
        h.phase = f"{args.clients} x {args.per_client} claps in {args.duration:g} s"
        a = h.snapshot()
        params = {"per_client": args.per_client, "duration": args.duration, "reaction": "clap"}
        acted = await h.call("react", params, timeout=args.duration + 120)
        await wait_quiet(h, 2.5)
        b = h.snapshot()
        on = h.phase_row("reactions", a, b, {})
        sent = sum(r["sent"] for r in acted)
        states = await h.call("reaction_state", {"clap": sent})
        clients = sum(s["clients"] for s in states)
        seconds = b["t"] - a["t"]
        events = sum(s["events"] for s in states)
        summary = {
            "connect": connected,
            "claps_sent": sent,
            "unanswered": sum(r["unanswered"] for r in acted),
            "clients_with_the_exact_sum": sum(s["exact"] for s in states),
            "clients": clients,
            "reactions_frames_per_member": events / clients if clients else None,
            "reactions_frames_per_member_per_s": events / clients / seconds if clients else None,
            "max_reactions_per_member_in_1s": max((s["max_per_second"] for s in states), default=0),
            "reactions_closer_than_900ms": sum(s["closer_than_900ms"] for s in states),
            "react_reply_latency": report.percentiles([int(ms * 1000) for r in acted for ms in r["reply_ms"]]),
            "server_cpu_pct_reactions": on["server_cpu_pct"],
            "server_cpu_pct_reactions_off": off["server_cpu_pct"],
        }
        checks = [
            (
                "every member received the sum of all claps",
                summary["clients_with_the_exact_sum"] == clients > 0,
                f"{summary['clients_with_the_exact_sum']}/{clients} got {sent}",
            ),
            (
                "at most one reactions frame per member per second",
                summary["max_reactions_per_member_in_1s"] <= 1,
                f"max {summary['max_reactions_per_member_in_1s']} in a second, "
                f"{summary['reactions_closer_than_900ms']} pairs closer than 900 ms",
            ),
            (
                "server CPU with reactions against the idle room reported",
                True,
                f"{on['server_cpu_pct']:.1f}% with reactions, {off['server_cpu_pct']:.1f}% off",
            ),
        ]
        return {"rows": [off, on], "summary": summary, "checks": checks}


def add_parsers(sub: Any, add_common: Any) -> None:
    p = sub.add_parser(
        "poll",
        help="poll: N participants answer one poll within a window; exact totals everywhere, results coalesced",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=5000)
    add_common(p, run=scenario_poll, duration=10.0)

    p = sub.add_parser(
        "reactions",
        help="reactions: N participants clap within a window; one summed frame per member per second",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--per-client", type=int, default=3, help="claps per participant (the server allows 10 per 10 s)")
    add_common(p, run=scenario_reactions, duration=5.0)
