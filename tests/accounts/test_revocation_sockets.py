"""Account changes reach open sockets on every server process: 4401 for ended logins, and deletion's honest record.

REST calls go to one server process, the sockets under test live on the other, so every close
crossed the cross-process control channel.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.helpers import API, PASSWORD, assert_error, auth_header, create_api_key, live_meeting, login, register_user
from tests.realtime import conftest as realtime
from tests.realtime.conftest import Pair
from tests.wsclient import WsClient, connect

pair = realtime.pair  # two real server processes, shared by this module

NEW_PASSWORD = "rotated passphrase"


@pytest.fixture
async def rest(pair: Pair) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pair.servers[0].url) as http:
        yield http


async def still_open(ws: WsClient, seconds: float = 1.0) -> bool:
    """True if the socket stays open (answers a ping) for `seconds` after the others were closed."""
    await asyncio.sleep(seconds)
    reply = await ws.request({"type": "ping"})
    return bool(reply["type"] == "pong")


async def refused_with(url: str, token: str) -> int:
    """The close code a new socket authenticating with `token` gets."""
    async with connect(url) as ws:
        await ws.send({"type": "auth", "token": token})
        return await ws.wait_closed(10)


async def test_password_change_closes_other_logins_sockets(pair: Pair, rest: httpx.AsyncClient) -> None:
    account = await register_user(rest)
    other = await login(rest, account["user"]["email"])
    key = (await create_api_key(rest, account["access_token"]))["key"]
    far = pair.servers[1].ws_url
    async with (
        connect(far, account["access_token"]) as mine,
        connect(far, other["access_token"]) as theirs,
        connect(far, key) as integration,
    ):
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        response = await rest.post(f"{API}/me/password", json=body, headers=auth_header(account["access_token"]))
        assert response.status_code == 200, response.text
        assert await theirs.wait_closed(10) == 4401
        assert await still_open(mine)
        assert await still_open(integration, 0)  # an API key is not a login: it stays valid


async def test_revoking_a_session_closes_only_its_sockets(pair: Pair, rest: httpx.AsyncClient) -> None:
    account = await register_user(rest)
    other = await login(rest, account["user"]["email"])
    headers = auth_header(account["access_token"])
    sessions = (await rest.get(f"{API}/me/sessions", headers=headers)).json()
    target = next(s["id"] for s in sessions if not s["current"])
    far = pair.servers[1].ws_url
    async with connect(far, account["access_token"]) as mine, connect(far, other["access_token"]) as theirs:
        assert (await rest.delete(f"{API}/me/sessions/{target}", headers=headers)).status_code == 204
        assert await theirs.wait_closed(10) == 4401
        assert await still_open(mine)
    assert await refused_with(far, other["access_token"]) == 4401


async def test_deleting_the_account_keeps_the_record_honest(pair: Pair, rest: httpx.AsyncClient) -> None:
    host = await register_user(rest, display_name="Hilda Host")
    leaver = await register_user(rest, display_name="Leaving Leo")
    meeting = await live_meeting(rest, host["access_token"], "Town hall")
    owned = await live_meeting(rest, leaver["access_token"], "Leo's own meeting")
    guest = (
        await rest.post(f"{API}/meetings/join", json={"join_code": owned["join_code"], "display_name": "G"})
    ).json()
    joined = await rest.post(
        f"{API}/meetings/join", json={"join_code": meeting["join_code"]}, headers=auth_header(leaver["access_token"])
    )
    assert joined.status_code == 200
    room = f"meeting:{meeting['id']}"
    far, near = pair.servers[1].ws_url, pair.servers[0].ws_url
    async with connect(near, host["access_token"]) as hilda, connect(far, leaver["access_token"]) as leo:
        await hilda.join(room)
        await leo.join(room)
        asked = await hilda.request({"type": "ask", "room": room, "text": "What is the plan?"})
        hilda_question = asked["data"]["question"]["id"]
        mine = await leo.request({"type": "ask", "room": room, "text": "Leo wants to know", "anonymous": False})
        leo_question = mine["data"]["question"]["id"]
        assert mine["data"]["question"]["author"]["display_name"] == "Leaving Leo"
        voted = await leo.request({"type": "vote", "room": room, "question_id": hilda_question, "up": True})
        assert voted["data"]["votes"] == 1
        await hilda.request({"type": "vote", "room": room, "question_id": leo_question, "up": True})

        async with connect(near, guest["guest_token"]) as visitor:
            await visitor.join(f"meeting:{owned['id']}")
            response = await rest.request(
                "DELETE", f"{API}/me", json={"password": PASSWORD}, headers=auth_header(leaver["access_token"])
            )
            assert response.status_code == 204, response.text
            assert await leo.wait_closed(10) == 4401
            assert await visitor.wait_closed(10) == 4403  # the meeting Leo owned is gone
        # an open page stops naming Leo at once
        update = await hilda.wait_for(
            lambda f: f["type"] == "question.updated" and f["question"]["id"] == leo_question, timeout=10
        )
        assert update["question"]["author"] is None and update["question"]["anonymous"] is True

    # a fresh snapshot, on either process, no longer names Leo; every vote still counts
    for url in (near, far):
        async with connect(url, host["access_token"]) as fresh:
            snapshot = (await fresh.join(room))["snapshot"]
            questions = {q["id"]: q for q in snapshot["questions"]}
            assert questions[leo_question]["author"] is None
            assert questions[leo_question]["anonymous"] is True
            assert questions[leo_question]["votes"] == 1
            assert questions[hilda_question]["votes"] == 1
            assert "Leaving Leo" not in str(snapshot)
    csv = await rest.get(f"{API}/meetings/{meeting['id']}/questions.csv", headers=auth_header(host["access_token"]))
    assert csv.status_code == 200 and "Leaving Leo" not in csv.text and "Leo wants to know" in csv.text
    missing = await rest.get(f"{API}/meetings/{owned['id']}", headers=auth_header(host["access_token"]))
    assert_error(missing, 404, "not_found")
    assert await refused_with(far, leaver["access_token"]) == 4401


async def revocation_latencies(pair: Pair, rest: httpx.AsyncClient, rounds: int) -> list[float]:
    """Seconds from a `DELETE /me/sessions/{id}` answer (process 0) to the 4401 on process 1, per round."""
    account = await register_user(rest)
    headers = auth_header(account["access_token"])
    timings = []
    for _ in range(rounds):
        other = await login(rest, account["user"]["email"])
        sessions: list[dict[str, Any]] = (await rest.get(f"{API}/me/sessions", headers=headers)).json()
        target = next(s["id"] for s in sessions if not s["current"])
        async with connect(pair.servers[1].ws_url, other["access_token"]) as ws:
            started = time.monotonic()
            await rest.delete(f"{API}/me/sessions/{target}", headers=headers)
            answered = time.monotonic()
            assert await ws.wait_closed(10) == 4401
            timings.append((time.monotonic() - started, time.monotonic() - answered))
    return [total for total, _ in timings]


async def test_revocation_latency_to_the_other_process(
    pair: Pair, rest: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """The closing note's figure: request sent to socket closed on the other process (printed with -s)."""
    timings = await revocation_latencies(pair, rest, 20)
    with capsys.disabled():
        median, worst = statistics.median(timings) * 1000, max(timings) * 1000
        print(f"\nsession revoked -> socket closed on the other process: median {median:.0f} ms, max {worst:.0f} ms")
    assert statistics.median(timings) < 2.0
