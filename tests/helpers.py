"""Small REST helpers for every test that needs accounts, tokens, meetings or guests.

Each takes an `httpx.AsyncClient` whose base URL is the server: the in-process `client`
fixture (litestar's AsyncTestClient is an httpx.AsyncClient) or
`httpx.AsyncClient(base_url=server.url)` against a `start_servers()` process. Each asserts the
status it expects and returns the decoded JSON, so a test reads as its scenario.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.settings import Settings

API = "/api/v1"
PASSWORD = "correct horse battery"


def auth_header(token: str) -> dict[str, str]:
    """`{"Authorization": "Bearer <token>"}` for an access token, guest token or API key alike."""
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the SPEC's error envelope with this status and code; returns the `error` object."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


async def register_user(
    http: httpx.AsyncClient,
    email: str | None = None,
    *,
    password: str = PASSWORD,
    display_name: str | None = None,
) -> dict[str, Any]:
    """Register a new account (a unique email unless given); returns the Session (`user`, `access_token`, ...)."""
    email = email or unique_email()
    response = await http.post(
        f"{API}/auth/register",
        json={"email": email, "password": password, "display_name": display_name or email.split("@")[0]},
    )
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Log in; returns the Session."""
    response = await http.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


async def create_api_key(http: httpx.AsyncClient, token: str, name: str = "ci") -> dict[str, Any]:
    """A new API key for the token's user; returns `{id, name, key, created_at}`."""
    response = await http.post(f"{API}/api-keys", json={"name": name}, headers=auth_header(token))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_meeting(
    http: httpx.AsyncClient, token: str, title: str = "All hands", **fields: Any
) -> dict[str, Any]:
    """Create a meeting owned by the token's user; extra fields (`settings=...`) go into the body; returns it."""
    response = await http.post(f"{API}/meetings", json={"title": title, **fields}, headers=auth_header(token))
    assert response.status_code == 201, response.text
    meeting: dict[str, Any] = response.json()
    return meeting


async def patch_meeting(http: httpx.AsyncClient, token: str, meeting_id: str, **fields: Any) -> dict[str, Any]:
    """PATCH a meeting (owner or presenter token); returns the Meeting."""
    response = await http.patch(f"{API}/meetings/{meeting_id}", json=fields, headers=auth_header(token))
    assert response.status_code == 200, response.text
    meeting: dict[str, Any] = response.json()
    return meeting


async def set_status(http: httpx.AsyncClient, token: str, meeting_id: str, status: str) -> dict[str, Any]:
    """Move a meeting to `status` (`live`, `ended`, `cancelled`); returns the Meeting."""
    return await patch_meeting(http, token, meeting_id, status=status)


async def live_meeting(http: httpx.AsyncClient, token: str, title: str = "Live Q&A", **fields: Any) -> dict[str, Any]:
    """A meeting that is already `live` (the common starting point for realtime tests)."""
    meeting = await create_meeting(http, token, title, **fields)
    return await set_status(http, token, meeting["id"], "live")


async def add_presenter(http: httpx.AsyncClient, owner_token: str, meeting_id: str, email: str) -> dict[str, Any]:
    """Make the account with `email` a presenter; returns `{user_id, role}`."""
    response = await http.post(
        f"{API}/meetings/{meeting_id}/presenters", json={"email": email}, headers=auth_header(owner_token)
    )
    assert response.status_code == 201, response.text
    presenter: dict[str, Any] = response.json()
    return presenter


async def join_as_guest(http: httpx.AsyncClient, join_code: str, display_name: str = "Guest") -> dict[str, Any]:
    """Join without credentials; returns `{meeting_id, guest_token, expires_in}`."""
    response = await http.post(f"{API}/meetings/join", json={"join_code": join_code, "display_name": display_name})
    assert response.status_code == 200, response.text
    joined: dict[str, Any] = response.json()
    return joined


async def join_as_user(http: httpx.AsyncClient, token: str, join_code: str) -> dict[str, Any]:
    """Join with a user's token (the user becomes a participant); returns `{meeting_id}`."""
    response = await http.post(f"{API}/meetings/join", json={"join_code": join_code}, headers=auth_header(token))
    assert response.status_code == 200, response.text
    joined: dict[str, Any] = response.json()
    return joined


async def meeting_with_people(http: httpx.AsyncClient) -> dict[str, Any]:
    """A live meeting with an owner, a presenter, a participant and a guest: tokens and ids of each.

    Returns `{"meeting": Meeting, "owner": Session, "presenter": Session, "participant": Session,
    "guest": {meeting_id, guest_token, expires_in}}`.
    """
    owner = await register_user(http, display_name="Olivia Owner")
    presenter = await register_user(http, display_name="Pat Presenter")
    participant = await register_user(http, display_name="Paula Participant")
    meeting = await live_meeting(http, owner["access_token"])
    await add_presenter(http, owner["access_token"], meeting["id"], presenter["user"]["email"])
    await join_as_user(http, participant["access_token"], meeting["join_code"])
    guest = await join_as_guest(http, meeting["join_code"], "Gus Guest")
    return {"meeting": meeting, "owner": owner, "presenter": presenter, "participant": participant, "guest": guest}


@contextlib.asynccontextmanager
async def client_with(settings: Settings, **overrides: Any) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """An in-process client on the real app with settings changed: `client_with(settings, join_per_minute=3)`."""
    async with AsyncTestClient(app=create_app(msgspec.structs.replace(settings, **overrides))) as test_client:
        yield test_client
