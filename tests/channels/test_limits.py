"""Hostile input at the socket (issue 16): deep nesting, sockets that never authenticate, one address's many sockets."""

from __future__ import annotations

import asyncio

import msgspec

from tests.channels.support import processes


def nested_json(depth: int) -> str:
    return '{"type": "ping", "ref": ' + "[" * depth + "]" * depth + "}"


def nested_msgpack(depth: int) -> bytes:
    return b"\x82\xa4type\xa4ping\xa3ref" + b"\x91" * depth + b"\x90"


async def test_frames_nested_a_thousand_deep_get_bad_request_before_and_after_auth() -> None:
    async with processes(1) as (_, [process]):
        for binary in (False, True):
            socket = await process.connect("ada", authenticate=False, binary=binary)
            for authenticated in (False, True):
                start = len(socket.frames)
                for depth in (1_000, 20_000):  # 20,000 levels: 40 KB, still under the 64 KiB frame limit
                    if binary:
                        socket.send_raw({"bytes": nested_msgpack(depth)})
                    else:
                        socket.send_raw({"text": nested_json(depth)})
                    error = await socket.wait_for(lambda f: f["type"] == "error", start=start)
                    assert error["code"] == "bad_request", error
                    start = len(socket.frames)
                assert socket.close_code is None
                if not authenticated:
                    socket.send({"type": "auth", "token": "user:ada"})
                    await socket.wait_for(lambda f: f["type"] == "welcome")
            assert (await socket.request({"type": "ping"}))["type"] == "pong"


async def test_sockets_that_never_authenticate_close_with_4408_and_one_address_is_capped() -> None:
    async with processes(1, auth_timeout_s=0.3, max_unauthenticated_per_address=3) as (_, [process]):
        idle = [await process.connect(authenticate=False, address="10.0.0.9") for _ in range(3)]
        refused = await process.connect(authenticate=False, address="10.0.0.9")
        await asyncio.wait_for(refused.task, 1)
        assert not refused.accepted and refused.sent[0]["type"] == "websocket.close"  # no HTTP extension: bare close
        other = await process.connect(authenticate=False, address="10.0.0.10")  # another address is not affected
        for socket in [*idle, other]:
            assert await socket.wait_closed(2) == 4408
        assert not process.gateway.addresses.open and not process.gateway.addresses.unauthenticated
        again = await process.connect("ada", address="10.0.0.9")  # the cap counts open sockets only
        assert (await again.request({"type": "ping"}))["type"] == "pong"


async def test_an_invalid_utf8_frame_is_refused_without_closing() -> None:
    """uvicorn closes a non-UTF-8 text frame itself (1007); bytes that reach the app are answered."""
    async with processes(1) as (_, [process]):
        ada = await process.connect("ada")
        ada.send_raw({"bytes": b"\xff\xfe not json"})
        error = await ada.wait_for(lambda f: f["type"] == "error")
        assert error["code"] == "bad_request" and ada.close_code is None
        assert msgspec.json.encode(error)
