"""Issue 16, REST side: deeply nested JSON, out-of-range times and oversized bodies are bad input, never a 500."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.helpers import API, assert_error, auth_header, create_meeting, live_meeting, register_user

Client = AsyncTestClient  # type: ignore[type-arg]

DEEP_BODIES = {
    "arrays": "[" * 1000 + "]" * 1000,
    "objects": '{"a":' * 1000 + "1" + "}" * 1000,
}


async def _json_endpoints(client: Client) -> list[tuple[str, str]]:
    """Every operation of the OpenAPI document that takes a JSON body (so a new one is covered too)."""
    spec = (await client.get("/schema/openapi.json")).json()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "application/json" in operation.get("requestBody", {}).get(
                "content", {}
            ):
                found.append((method.upper(), path))
    assert len(found) >= 9, found
    return found


@pytest.mark.parametrize("shape", sorted(DEEP_BODIES))
async def test_json_nested_a_thousand_levels_is_a_400_on_every_json_endpoint(client: Client, shape: str) -> None:
    owner = await register_user(client)
    meeting = await live_meeting(client, owner["access_token"])
    body = DEEP_BODIES[shape]
    for method, path in await _json_endpoints(client):
        url = path.replace("{meeting_id}", meeting["id"])
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), url)  # any other id in the path (a poll's)
        for headers in ({}, auth_header(owner["access_token"])):
            response = await client.request(
                method, url, content=body, headers={"Content-Type": "application/json", **headers}
            )
            assert response.status_code in (400, 401, 422), (method, url, bool(headers), response.text)
            assert set(response.json()) == {"error"}, response.text
    # nothing changed, and the process still answers
    assert (await client.get(f"{API}/meetings/{meeting['id']}", headers=auth_header(owner["access_token"]))).json()[
        "title"
    ] == meeting["title"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("starts_at", "9999-12-31T23:59:59-14:00"),
        ("ends_at", "9999-12-31T23:59:59-00:01"),
        ("starts_at", "0001-01-01T00:00:00+14:00"),
    ],
)
async def test_times_whose_utc_value_leaves_years_1_to_9999_are_422(client: Client, field: str, value: Any) -> None:
    owner = await register_user(client)
    token = owner["access_token"]
    created = await client.post(f"{API}/meetings", json={"title": "Far", field: value}, headers=auth_header(token))
    error = assert_error(created, 422, "validation_error")
    assert error["details"][0]["key"] == field
    meeting = await create_meeting(client, token)
    patched = await client.patch(f"{API}/meetings/{meeting['id']}", json={field: value}, headers=auth_header(token))
    assert_error(patched, 422, "validation_error")


async def test_a_body_over_the_limit_is_413_with_a_too_large_code(client: Client) -> None:
    response = await client.post(
        f"{API}/auth/login",
        content=b'{"email": "' + b"a" * (1024 * 1024 + 10) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "too_large")
