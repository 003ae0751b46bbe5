"""The connection part of SPEC section 4 against real server processes: handshake, auth, frames, limits."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import msgspec
import pytest
import websockets

from channels.protocol import Event
from server.auth.tokens import issue_access_token
from tests.realtime.conftest import Pair
from tests.wsclient import connect, test_broker

WELCOME_KEYS = {"type", "session_id", "user", "protocol", "heartbeat_s", "unread_notifications"}


class Note(Event, tag="test.note", kw_only=True):
    text: str


async def test_welcome_is_exactly_as_specified_and_the_user_room_is_joined(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    async with connect(pair.servers[0].ws_url, ada.token) as ws:
        welcome = ws.welcome
        assert welcome is not None and set(welcome) == WELCOME_KEYS
        assert welcome["user"] == {"id": ada.id, "display_name": "Ada", "guest": False}
        assert welcome["protocol"] == 1 and welcome["heartbeat_s"] == 25 and welcome["unread_notifications"] == 0
        assert isinstance(welcome["session_id"], str) and welcome["session_id"]
        assert ws.frames[0] is welcome  # nothing before welcome
        async with test_broker(pair.redis_url, pair.prefix) as broker:
            seq = await broker.publish(Note(room=f"user:{ada.id}", text="for you"))
        note = await ws.wait_for(lambda f: f["type"] == "test.note")
        assert note == {"type": "test.note", "room": f"user:{ada.id}", "text": "for you", "seq": seq}


async def test_guest_welcome(pair: Pair) -> None:
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    guest = await pair.world.guest(meeting, "Gus")
    async with connect(pair.servers[1].ws_url, guest.token) as ws:
        assert ws.welcome is not None
        assert ws.welcome["user"] == {"id": guest.id, "display_name": "Gus", "guest": True}


async def test_bad_and_expired_tokens_close_with_4401(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    expired = issue_access_token(msgspec.structs.replace(pair.settings, access_token_ttl_s=-60), uuid.UUID(ada.id))
    for token in ("not-a-token", expired, ada.token + "x", "rk_nosuchkey"):
        async with connect(pair.servers[0].ws_url) as ws:
            await ws.send({"type": "auth", "token": token})
            assert await ws.wait_closed() == 4401
            assert not [f for f in ws.frames if f["type"] == "welcome"]


async def test_frames_before_auth_get_errors_and_no_auth_closes_with_4408(pair: Pair) -> None:
    async with connect(pair.servers[0].ws_url) as ws:
        started = time.monotonic()
        answer = await ws.request({"type": "join", "room": "user:x"})
        assert answer["type"] == "error" and answer["code"] == "unauthorized"
        assert await ws.wait_closed(timeout=15) == 4408
        assert 9.0 < time.monotonic() - started < 12.0


async def test_bad_frames_get_bad_request_naming_the_problem_and_the_connection_stays_open(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    async with connect(pair.servers[0].ws_url, ada.token) as ws:
        await ws.send_raw("this is not json")
        error = await ws.wait_for(lambda f: f["type"] == "error")
        assert error["code"] == "bad_request" and "JSON" in error["message"]

        cases = [
            ({"type": "fly"}, "unknown frame type 'fly'"),
            ({"type": "join"}, "room"),
            ({"type": "join", "room": 5}, "room"),
            ({"type": "join", "room": "user:x", "colour": "red"}, "colour"),
            ({"type": "leave", "room": "r", "since": "yesterday"}, "since"),
            ({"room": "r"}, "type"),
        ]
        for frame, words in cases:
            answer = await ws.request(frame)
            assert answer["type"] == "error" and answer["code"] == "bad_request", (frame, answer)
            assert words in answer["message"], (frame, answer)
        await ws.send_raw("[1, 2]")
        assert (await ws.wait_for(lambda f: f["type"] == "error"))["code"] == "bad_request"
        assert (await ws.request({"type": "ping"}))["type"] == "pong"  # still open
        # JSON in a binary frame is fine on a JSON connection
        await ws.send_raw(b'{"type": "ping", "ref": "bin"}')
        assert (await ws.wait_for(lambda f: f.get("ref") == "bin"))["type"] == "pong"


async def test_ping_pong_and_refs(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    async with connect(pair.servers[1].ws_url, ada.token) as ws:
        assert await ws.request({"type": "ping", "ref": "abc"}) == {"type": "pong", "ref": "abc"}
        await ws.send({"type": "ping"})
        assert await ws.wait_for(lambda f: f["type"] == "pong" and "ref" not in f) == {"type": "pong"}
        left = await ws.request({"type": "leave", "room": "meeting:nowhere", "ref": "l1"})
        assert left["type"] == "reply" and left["ref"] == "l1"
        again = await ws.request({"type": "auth", "token": ada.token})
        assert again["type"] == "error" and again["code"] == "bad_request"


async def test_a_frame_over_64_kib_closes_with_1009(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    async with connect(pair.servers[0].ws_url, ada.token) as ws:
        head, tail = '{"type":"ping","ref":"', '"}'
        exactly = head + "x" * (64 * 1024 - len(head) - len(tail)) + tail
        assert len(exactly.encode()) == 64 * 1024
        await ws.send_raw(exactly)
        assert (await ws.wait_for(lambda f: f["type"] == "pong"))["ref"].startswith("xxx")
        over = head + "x" * (64 * 1024 + 1 - len(head) - len(tail)) + tail
        await ws.send_raw(over)
        assert await ws.wait_closed() == 1009


async def test_msgpack_subprotocol_carries_the_same_objects(pair: Pair) -> None:
    owner = await pair.world.user("Olive")
    meeting = await pair.world.meeting(owner)
    room = f"meeting:{meeting}"
    async with (
        connect(pair.servers[0].ws_url, owner.token, msgpack=True) as packed,
        connect(pair.servers[0].ws_url, owner.token) as text,
    ):
        assert packed.connection.subprotocol == "roomcast.v1.msgpack"
        assert text.connection.subprotocol == "roomcast.v1.json"
        assert packed.welcome is not None and set(packed.welcome) == WELCOME_KEYS
        joined = await packed.join(room)
        assert joined["snapshot"]["meeting"]["id"] == meeting and joined["recovered"] is False
        await text.join(room)
        async with test_broker(pair.redis_url, pair.prefix) as broker:
            seq = await broker.publish(Note(room=room, text="hé"))
        expected = {"type": "test.note", "room": room, "text": "hé", "seq": seq}
        assert await packed.wait_for(lambda f: f["type"] == "test.note") == expected
        assert await text.wait_for(lambda f: f["type"] == "test.note") == expected
        assert any(isinstance(m, bytes) for m in [msgspec.msgpack.encode(expected)])
        bad = await packed.request({"type": "join", "room": 7})
        assert bad["type"] == "error" and bad["code"] == "bad_request"


async def test_no_subprotocol_means_json_and_plain_http_is_refused(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    async with connect(pair.servers[0].ws_url, ada.token, subprotocols=[]) as ws:
        assert ws.connection.subprotocol is None and ws.welcome is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(pair.servers[0].url + "/ws")
    assert response.status_code == 426 and response.json()["error"]["code"] == "bad_request"


async def test_flooding_gets_rate_limited_then_4429(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    async with connect(pair.servers[1].ws_url, ada.token) as ws:
        for number in range(400):
            try:
                await ws.send({"type": "ping", "ref": f"p{number}"})
            except websockets.ConnectionClosed:
                break
        assert await ws.wait_closed() == 4429
        limited = [f for f in ws.frames if f["type"] == "error" and f["code"] == "rate_limited"]
        assert limited and all(isinstance(f["retry_after_s"], int) and f["retry_after_s"] >= 1 for f in limited)
        assert limited[0]["ref"].startswith("p")
        assert len([f for f in ws.frames if f["type"] == "pong"]) >= 50


async def test_a_client_within_the_limit_is_never_limited(pair: Pair) -> None:
    ada = await pair.world.user("Ada")
    async with connect(pair.servers[1].ws_url, ada.token) as ws:
        for _ in range(3):
            answers = await asyncio.gather(*(ws.request({"type": "ping"}) for _ in range(15)))
            assert {a["type"] for a in answers} == {"pong"}
            await asyncio.sleep(0.5)


@pytest.mark.parametrize("index", [0, 1])
async def test_metrics_and_asyncapi_are_served(pair: Pair, index: int) -> None:
    server = pair.servers[index]
    async with httpx.AsyncClient() as http:
        metrics = await http.get(server.url + "/metrics")
        asyncapi = await http.get(server.url + "/asyncapi.json")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "roomcast_ws_connections",
        "roomcast_rooms",
        "roomcast_ws_frames_in_total",
        "roomcast_ws_frames_out_total",
        "roomcast_fanout_latency_seconds_bucket",
        "roomcast_ws_queue_overflows_total",
    ):
        assert name in metrics.text, name
    assert asyncapi.json()["asyncapi"] == "3.0.0"
