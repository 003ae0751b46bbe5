"""Every error Litestar or a handler can raise leaves as the SPEC's envelope."""

from __future__ import annotations

from litestar import post
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.settings import Settings


def assert_envelope(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_unknown_route(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert_envelope(await client.get("/api/v1/nothing-here"), 404, "not_found")


async def test_wrong_method(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert_envelope(await client.post("/health/live"), 405, "bad_request")


async def test_malformed_json_and_validation(settings: Settings) -> None:
    @post("/echo", sync_to_thread=False)
    def echo(data: dict[str, int]) -> dict[str, int]:
        return data

    app = create_app(settings)
    app.register(echo)
    async with AsyncTestClient(app=app) as test_client:
        assert_envelope(
            await test_client.post("/echo", content=b"{not json", headers={"content-type": "application/json"}),
            400,
            "bad_request",
        )
        error = assert_envelope(await test_client.post("/echo", json={"a": "text"}), 422, "validation_error")
        assert error["details"]


async def test_handler_that_raises_is_internal_without_trace(settings: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    @post("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret detail")

    app = create_app(settings)
    app.register(boom)
    async with AsyncTestClient(app=app) as test_client:
        response = await test_client.post("/boom")
    error = assert_envelope(response, 500, "internal")
    assert "secret detail" not in response.text
    assert "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    assert request_id in error["message"]
    assert any(getattr(r, "request_id", None) == request_id for r in caplog.records)


async def test_oversized_body(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.post("/health/live", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code in (405, 413)
    assert response.json()["error"]["code"] == "bad_request"
