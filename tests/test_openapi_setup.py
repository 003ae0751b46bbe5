"""`GET /schema` documents every auth and setup endpoint: its body, its answer and its error responses."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

ENDPOINTS = {
    ("post", "/api/v1/auth/register"): ("Session", {"409", "422", "429"}),
    ("post", "/api/v1/auth/login"): ("Session", {"401", "429"}),
    ("post", "/api/v1/auth/refresh"): ("Session", {"401"}),
    ("post", "/api/v1/auth/logout"): (None, {"422"}),
    ("get", "/api/v1/me"): ("User", {"401"}),
    ("post", "/api/v1/api-keys"): ("ApiKeyCreated", {"401", "422"}),
    ("get", "/api/v1/api-keys"): (None, {"401"}),
    ("delete", "/api/v1/api-keys/{key_id}"): (None, {"404"}),
    ("post", "/api/v1/meetings"): ("Meeting", {"401", "422"}),
    ("get", "/api/v1/meetings"): ("MeetingPage", {"400", "401"}),
    ("get", "/api/v1/meetings/{meeting_id}"): ("Meeting", {"403", "404"}),
    ("patch", "/api/v1/meetings/{meeting_id}"): ("Meeting", {"404", "409", "422"}),
    ("delete", "/api/v1/meetings/{meeting_id}"): (None, {"403", "404"}),
    ("post", "/api/v1/meetings/{meeting_id}/presenters"): ("Presenter", {"404", "422"}),
    ("delete", "/api/v1/meetings/{meeting_id}/presenters/{user_id}"): (None, {"404"}),
    ("post", "/api/v1/meetings/join"): ("Joined", {"404", "409", "422", "429"}),
}
WITH_BODY = {"register", "login", "refresh", "logout", "api-keys", "meetings", "presenters", "join"}


async def test_every_setup_endpoint_is_documented(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    schemas = document["components"]["schemas"]
    assert {"Session", "User", "Meeting", "MeetingSettings", "ErrorBody"} <= set(schemas)
    assert set(schemas["Meeting"]["properties"]) == {
        "id", "title", "description", "starts_at", "ends_at", "status",
        "join_code", "settings", "owner_id", "created_at", "source",
    }  # fmt: skip
    for (method, path), (answer, errors) in ENDPOINTS.items():
        operation = document["paths"][path][method]
        assert errors <= set(operation["responses"]), (method, path, operation["responses"].keys())
        for status in errors:
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorBody"}
        if answer:
            success = next(v for k, v in operation["responses"].items() if k.startswith("2"))
            assert success["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{answer}"}
        if method in ("post", "patch") and path.rsplit("/", 1)[-1] in WITH_BODY | {"{meeting_id}"}:
            assert "requestBody" in operation, (method, path)
