"""SPEC section 3 "Meetings (setup)": every row, success and each documented failure, through HTTP."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from channels.protocol import Event
from server.meetings.codes import ALPHABET
from server.meetings.events import MeetingUpdated
from server.settings import Settings
from tests.helpers import (
    API,
    add_presenter,
    assert_error,
    auth_header,
    client_with,
    create_meeting,
    join_as_guest,
    join_as_user,
    live_meeting,
    meeting_with_people,
    patch_meeting,
    register_user,
    set_status,
)

Client = AsyncTestClient  # type: ignore[type-arg]
MEETING_KEYS = {
    "id",
    "title",
    "description",
    "starts_at",
    "ends_at",
    "status",
    "join_code",
    "settings",
    "owner_id",
    "created_at",
    "source",
}
DEFAULT_SETTINGS = {"moderation": "post", "anonymous_questions": True, "max_question_length": 300, "blocked_words": []}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class RecordingBroker:
    """Stands in for the broker: records what REST handlers hand to the realtime side."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[Event] = []
        self.disconnected: list[tuple[str, str, int]] = []

    async def publish(self, event: Event) -> int:
        if self.fail:
            raise ConnectionError("redis is down")
        self.published.append(event)
        return len(self.published)

    async def disconnect_user(self, user_id: str, room_prefix: str, code: int) -> None:
        if self.fail:
            raise ConnectionError("redis is down")
        self.disconnected.append((user_id, room_prefix, code))


def use_broker(client: Client, broker: RecordingBroker) -> None:
    client.app.state["services"].broker = broker


async def table_rows(database_url: str) -> dict[str, list[str]]:
    connection = await asyncpg.connect(database_url)
    try:
        return {
            table: sorted(str(tuple(r)) for r in await connection.fetch(f"SELECT * FROM {table}"))
            for table in ("users", "meetings", "meeting_members")
        }
    finally:
        await connection.close()


# --- create --------------------------------------------------------------------------------


async def test_create_with_defaults(client: Client) -> None:
    owner = await register_user(client)
    response = await client.post(
        f"{API}/meetings", json={"title": " Town hall "}, headers=auth_header(owner["access_token"])
    )
    assert response.status_code == 201, response.text
    meeting = response.json()
    assert set(meeting) == MEETING_KEYS
    assert meeting["title"] == "Town hall"
    assert meeting["description"] == ""
    assert meeting["starts_at"] is None and meeting["ends_at"] is None
    assert meeting["status"] == "scheduled"
    assert meeting["settings"] == DEFAULT_SETTINGS
    assert meeting["owner_id"] == owner["user"]["id"]
    assert meeting["source"] is None
    assert ISO_Z.match(meeting["created_at"])
    assert len(meeting["join_code"]) == 8 and set(meeting["join_code"]) <= set(ALPHABET)
    assert not set(meeting["join_code"]) & set("0O1IL")
    uuid.UUID(meeting["id"])


async def test_create_with_every_field(client: Client) -> None:
    token = (await register_user(client))["access_token"]
    settings = {"moderation": "pre", "anonymous_questions": False, "max_question_length": 2000, "blocked_words": ["x"]}
    meeting = await create_meeting(
        client,
        token,
        "Launch",
        description="Line one\nline two",
        starts_at="2030-05-01T10:00:00+02:00",
        ends_at="2030-05-01T09:00:00Z",
        settings=settings,
    )
    assert meeting["description"] == "Line one\nline two"
    assert meeting["starts_at"] == "2030-05-01T08:00:00Z"
    assert meeting["ends_at"] == "2030-05-01T09:00:00Z"
    assert meeting["settings"] == settings
    naive = await create_meeting(client, token, starts_at="2030-05-01T10:00:00", ends_at="2030-05-01T11:00:00.5")
    assert (naive["starts_at"], naive["ends_at"]) == ("2030-05-01T10:00:00Z", "2030-05-01T11:00:00.500000Z")
    partial = await create_meeting(client, token, settings={"moderation": "pre"})
    assert partial["settings"] == {**DEFAULT_SETTINGS, "moderation": "pre"}
    assert len({meeting["join_code"], naive["join_code"], partial["join_code"]}) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"title": "t", "description": 5}, "description"),
        ({"title": "t", "starts_at": "2030-01-01T10:00:00Z", "ends_at": "2030-01-01T09:59:59Z"}, "ends_at"),
        ({"title": "t", "starts_at": "tomorrow"}, "starts_at"),
        ({"title": "t", "settings": {"moderation": "none"}}, "settings.moderation"),
        ({"title": "t", "settings": {"anonymous_questions": "yes"}}, "settings.anonymous_questions"),
        ({"title": "t", "settings": {"anonymous_questions": 1}}, "settings.anonymous_questions"),
        ({"title": "t", "settings": {"max_question_length": 0}}, "settings.max_question_length"),
        ({"title": "t", "settings": {"max_question_length": 2001}}, "settings.max_question_length"),
        ({"title": "t", "settings": {"max_question_length": "300"}}, "settings.max_question_length"),
        ({"title": "t", "settings": {"max_question_length": 30.5}}, "settings.max_question_length"),
        ({"title": "t", "settings": {"blocked_words": ["w"] * 201}}, "settings.blocked_words"),
        ({"title": "t", "settings": {"blocked_words": ["x" * 51]}}, "settings.blocked_words[0]"),
        ({"title": "t", "settings": {"blocked_words": [""]}}, "settings.blocked_words[0]"),
        ({"title": "t", "settings": {"blocked_words": ["ok", "  "]}}, "settings.blocked_words[1]"),
        ({"title": "t", "settings": {"blocked_words": "spam"}}, "settings.blocked_words"),
        ({"title": "t", "settings": {"colour": "red"}}, "settings.colour"),
        ({"title": "t", "settings": None, "status": "live"}, "status"),
    ],
)
async def test_create_validation(client: Client, database_url: str, body: dict[str, Any], field: str) -> None:
    token = (await register_user(client))["access_token"]
    before = await table_rows(database_url)
    error = assert_error(
        await client.post(f"{API}/meetings", json=body, headers=auth_header(token)), 422, "validation_error"
    )
    assert error["details"][0]["key"] == field, error
    assert await table_rows(database_url) == before


async def test_create_needs_a_user(client: Client) -> None:
    assert_error(await client.post(f"{API}/meetings", json={"title": "t"}), 401, "unauthorized")
    assert_error(
        await client.post(f"{API}/meetings", json={"title": "t"}, headers=auth_header("nope")), 401, "unauthorized"
    )


async def test_an_api_key_acts_as_its_user(client: Client) -> None:
    session = await register_user(client)
    key = (
        await client.post(f"{API}/api-keys", json={"name": "k"}, headers=auth_header(session["access_token"]))
    ).json()["key"]
    meeting = await create_meeting(client, key, "Made by a script")
    assert meeting["owner_id"] == session["user"]["id"]
    assert (await client.get(f"{API}/meetings/{meeting['id']}", headers=auth_header(key))).status_code == 200


# --- list ----------------------------------------------------------------------------------


async def test_list_pages_through_owned_and_presented_meetings(client: Client) -> None:
    alice = await register_user(client)
    bob = await register_user(client)
    owned = [await create_meeting(client, alice["access_token"], f"m{i}") for i in range(5)]
    bobs = await create_meeting(client, bob["access_token"], "bob's")
    await add_presenter(client, bob["access_token"], bobs["id"], alice["user"]["email"])
    participating = await live_meeting(client, bob["access_token"], "bob's other")
    await join_as_user(client, alice["access_token"], participating["join_code"])

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"{API}/meetings", params=params, headers=auth_header(alice["access_token"]))
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 2
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [m["id"] for m in seen] == [bobs["id"]] + [m["id"] for m in reversed(owned)]  # newest first
    assert all(set(m) == MEETING_KEYS for m in seen)

    everything = (await client.get(f"{API}/meetings", headers=auth_header(alice["access_token"]))).json()
    assert [m["id"] for m in everything["items"]] == [m["id"] for m in seen]
    assert everything["next_cursor"] is None
    bobs_list = (await client.get(f"{API}/meetings", headers=auth_header(bob["access_token"]))).json()
    assert {m["id"] for m in bobs_list["items"]} == {bobs["id"], participating["id"]}


async def test_list_rejects_bad_limits_and_cursors(client: Client) -> None:
    headers = auth_header((await register_user(client))["access_token"])
    for limit in ("0", "101", "-1", "ten"):
        assert_error(await client.get(f"{API}/meetings?limit={limit}", headers=headers), 422, "validation_error")
    for cursor in ("garbage", "!!!", "eyJ4IjoxfQ", "WyJub3QgYSB0aW1lIiwgIngiXQ"):
        assert_error(
            await client.get(f"{API}/meetings", params={"cursor": cursor}, headers=headers), 400, "bad_request"
        )
    assert (await client.get(f"{API}/meetings?limit=1", headers=headers)).status_code == 200
    assert (await client.get(f"{API}/meetings?limit=100", headers=headers)).status_code == 200
    assert_error(await client.get(f"{API}/meetings"), 401, "unauthorized")


# --- get -----------------------------------------------------------------------------------


async def test_who_may_see_a_meeting(client: Client) -> None:
    people = await meeting_with_people(client)
    meeting = people["meeting"]
    url = f"{API}/meetings/{meeting['id']}"
    stranger = await register_user(client)
    other = await live_meeting(client, stranger["access_token"], "elsewhere")
    other_guest = await join_as_guest(client, other["join_code"])

    for who in ("owner", "presenter"):
        response = await client.get(url, headers=auth_header(people[who]["access_token"]))
        assert response.status_code == 200, response.text
        assert response.json() == meeting
    assert_error(await client.get(url, headers=auth_header(people["participant"]["access_token"])), 403, "forbidden")
    assert_error(await client.get(url, headers=auth_header(people["guest"]["guest_token"])), 403, "forbidden")
    assert_error(await client.get(url, headers=auth_header(stranger["access_token"])), 404, "not_found")
    assert_error(await client.get(url, headers=auth_header(other_guest["guest_token"])), 404, "not_found")
    assert_error(await client.get(url), 401, "unauthorized")
    owner = auth_header(people["owner"]["access_token"])
    assert_error(await client.get(f"{API}/meetings/{uuid.uuid4()}", headers=owner), 404, "not_found")
    assert_error(await client.get(f"{API}/meetings/not-a-uuid", headers=owner), 404, "not_found")


# --- patch ---------------------------------------------------------------------------------


async def test_patch_changes_only_what_it_names_and_publishes_after_commit(client: Client) -> None:
    broker = RecordingBroker()
    use_broker(client, broker)
    people = await meeting_with_people(client)
    meeting = people["meeting"]
    broker.published.clear()

    updated = await patch_meeting(
        client,
        people["presenter"]["access_token"],
        meeting["id"],
        title="Renamed",
        starts_at="2030-01-01T10:00:00Z",
        settings={"moderation": "pre", "blocked_words": [" spam "]},
    )
    assert updated == {
        **meeting,
        "title": "Renamed",
        "starts_at": "2030-01-01T10:00:00Z",
        "settings": {**meeting["settings"], "moderation": "pre", "blocked_words": ["spam"]},
    }
    [event] = broker.published
    assert isinstance(event, MeetingUpdated)
    assert event.room == f"meeting:{meeting['id']}"
    assert str(event.meeting.id) == meeting["id"]
    assert event.meeting.title == "Renamed"

    again = await patch_meeting(client, people["owner"]["access_token"], meeting["id"], settings={"moderation": "pre"})
    assert again == updated
    assert len(broker.published) == 1  # nothing changed, nothing sent
    cleared = await patch_meeting(client, people["owner"]["access_token"], meeting["id"], starts_at=None)
    assert cleared["starts_at"] is None
    assert cleared["settings"]["blocked_words"] == ["spam"]
    assert (
        await client.get(f"{API}/meetings/{meeting['id']}", headers=auth_header(people["owner"]["access_token"]))
    ).json() == cleared


async def test_a_failing_broker_does_not_fail_the_patch(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    use_broker(client, RecordingBroker(fail=True))
    token = (await register_user(client))["access_token"]
    meeting = await create_meeting(client, token)
    updated = await set_status(client, token, meeting["id"], "live")
    assert updated["status"] == "live"
    assert any(r.getMessage() == "meetings.publish_failed" for r in caplog.records)
    assert (await client.get(f"{API}/meetings/{meeting['id']}", headers=auth_header(token))).json()["status"] == "live"


async def test_status_transitions(client: Client, database_url: str) -> None:
    token = (await register_user(client))["access_token"]

    async def attempt(meeting_id: str, status: str) -> Any:
        return await client.patch(f"{API}/meetings/{meeting_id}", json={"status": status}, headers=auth_header(token))

    m = await create_meeting(client, token)
    assert_error(await attempt(m["id"], "ended"), 409, "conflict")
    assert (await attempt(m["id"], "scheduled")).status_code == 200  # already there: a no-op
    assert (await attempt(m["id"], "live")).json()["status"] == "live"
    assert_error(await attempt(m["id"], "scheduled"), 409, "conflict")
    assert (await attempt(m["id"], "ended")).json()["status"] == "ended"
    assert_error(await attempt(m["id"], "live"), 409, "conflict")
    assert (await attempt(m["id"], "cancelled")).json()["status"] == "cancelled"
    before = await table_rows(database_url)
    for status in ("scheduled", "live", "ended"):
        assert_error(await attempt(m["id"], status), 409, "conflict")
    assert_error(await attempt(m["id"], "archived"), 422, "validation_error")
    assert await table_rows(database_url) == before
    for start in ("scheduled", "live"):
        other = await create_meeting(client, token)
        if start == "live":
            await set_status(client, token, other["id"], "live")
        assert (await attempt(other["id"], "cancelled")).json()["status"] == "cancelled"


async def test_patch_failures_change_nothing(client: Client, database_url: str) -> None:
    people = await meeting_with_people(client)
    meeting = people["meeting"]
    url = f"{API}/meetings/{meeting['id']}"
    owner = auth_header(people["owner"]["access_token"])
    await patch_meeting(client, people["owner"]["access_token"], meeting["id"], starts_at="2030-01-01T10:00:00Z")
    before = await table_rows(database_url)
    cases = [
        ({"ends_at": "2030-01-01T09:00:00Z"}, "ends_at"),
        ({"title": ""}, "title"),
        ({"title": None}, "title"),
        ({"settings": {"max_question_length": 0}}, "settings.max_question_length"),
        ({"settings": {"blocked_words": [" "]}}, "settings.blocked_words[0]"),
        ({"settings": None}, "settings"),
        ({"owner_id": people["participant"]["user"]["id"]}, "owner_id"),
        ({"join_code": "AAAAAAAA"}, "join_code"),
    ]
    for body, field in cases:
        error = assert_error(await client.patch(url, json=body, headers=owner), 422, "validation_error")
        assert error["details"][0]["key"] == field, (body, error)
    assert_error(
        await client.patch(url, content=b"{", headers={**owner, "content-type": "application/json"}), 400, "bad_request"
    )
    assert_error(
        await client.patch(url, json={"title": "x"}, headers=auth_header(people["participant"]["access_token"])),
        403,
        "forbidden",
    )
    assert_error(
        await client.patch(url, json={"title": "x"}, headers=auth_header(people["guest"]["guest_token"])),
        403,
        "forbidden",
    )
    stranger = (await register_user(client))["access_token"]
    assert_error(await client.patch(url, json={"title": "x"}, headers=auth_header(stranger)), 404, "not_found")
    assert_error(await client.patch(url, json={"title": "x"}), 401, "unauthorized")
    after = await table_rows(database_url)
    after["users"] = [row for row in after["users"] if row in before["users"]]  # the stranger registered
    assert after == before


# --- delete --------------------------------------------------------------------------------


async def test_delete_is_for_the_owner_and_closes_everyones_sockets(client: Client, database_url: str) -> None:
    broker = RecordingBroker()
    use_broker(client, broker)
    people = await meeting_with_people(client)
    meeting = people["meeting"]
    url = f"{API}/meetings/{meeting['id']}"
    for who in ("presenter", "participant"):
        assert_error(await client.delete(url, headers=auth_header(people[who]["access_token"])), 403, "forbidden")
    assert_error(await client.delete(url, headers=auth_header(people["guest"]["guest_token"])), 403, "forbidden")
    stranger = (await register_user(client))["access_token"]
    assert_error(await client.delete(url, headers=auth_header(stranger)), 404, "not_found")
    assert_error(await client.delete(url), 401, "unauthorized")

    response = await client.delete(url, headers=auth_header(people["owner"]["access_token"]))
    assert response.status_code == 204
    owner = auth_header(people["owner"]["access_token"])
    assert_error(await client.get(url, headers=owner), 404, "not_found")
    assert_error(await client.delete(url, headers=owner), 404, "not_found")
    assert broker.disconnected == [("*", f"meeting:{meeting['id']}", 4403)]  # everyone, guests too
    # the guest went with the meeting: its token now stands for nobody
    assert_error(await client.get(url, headers=auth_header(people["guest"]["guest_token"])), 401, "unauthorized")
    rows = await table_rows(database_url)
    assert rows["meetings"] == [] and rows["meeting_members"] == []


# --- presenters ----------------------------------------------------------------------------


async def test_add_and_remove_presenters(client: Client) -> None:
    broker = RecordingBroker()
    use_broker(client, broker)
    owner = await register_user(client)
    pat = await register_user(client)
    meeting = await live_meeting(client, owner["access_token"])
    url = f"{API}/meetings/{meeting['id']}/presenters"
    pat_headers = auth_header(pat["access_token"])

    await join_as_user(client, pat["access_token"], meeting["join_code"])  # a participant first
    assert_error(await client.get(f"{API}/meetings/{meeting['id']}", headers=pat_headers), 403, "forbidden")
    response = await client.post(
        url, json={"email": pat["user"]["email"].upper()}, headers=auth_header(owner["access_token"])
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"user_id": pat["user"]["id"], "role": "presenter"}
    assert (await client.get(f"{API}/meetings/{meeting['id']}", headers=pat_headers)).status_code == 200
    again = await client.post(url, json={"email": pat["user"]["email"]}, headers=auth_header(owner["access_token"]))
    assert again.status_code == 201
    await join_as_user(client, pat["access_token"], meeting["join_code"])  # joining does not demote
    assert (await client.get(f"{API}/meetings/{meeting['id']}", headers=pat_headers)).status_code == 200
    listed = await client.get(url, headers=pat_headers)  # presenters see who else presents, with emails
    assert listed.status_code == 200, listed.text
    assert listed.json() == {
        "items": [
            {"user_id": pat["user"]["id"], "email": pat["user"]["email"], "display_name": pat["user"]["display_name"]}
        ]
    }

    removed = await client.delete(f"{url}/{pat['user']['id']}", headers=auth_header(owner["access_token"]))
    assert removed.status_code == 204
    assert (pat["user"]["id"], f"meeting:{meeting['id']}", 4403) in broker.disconnected
    assert_error(await client.get(f"{API}/meetings/{meeting['id']}", headers=pat_headers), 404, "not_found")
    assert_error(
        await client.delete(f"{url}/{pat['user']['id']}", headers=auth_header(owner["access_token"])), 404, "not_found"
    )
    assert (await client.get(url, headers=auth_header(owner["access_token"]))).json() == {"items": []}
    assert_error(await client.get(url, headers=pat_headers), 404, "not_found")


async def test_presenter_failures(client: Client) -> None:
    people = await meeting_with_people(client)
    meeting = people["meeting"]
    url = f"{API}/meetings/{meeting['id']}/presenters"
    owner = auth_header(people["owner"]["access_token"])
    assert_error(await client.post(url, json={"email": "nobody@example.com"}, headers=owner), 404, "not_found")
    assert_error(await client.post(url, json={"email": "not an email"}, headers=owner), 422, "validation_error")
    assert_error(await client.post(url, json={}, headers=owner), 422, "validation_error")
    assert_error(
        await client.post(url, json={"email": people["owner"]["user"]["email"]}, headers=owner), 409, "conflict"
    )
    newcomer = await register_user(client)
    body = {"email": newcomer["user"]["email"]}
    presenter = auth_header(people["presenter"]["access_token"])
    assert_error(await client.post(url, json=body, headers=presenter), 403, "forbidden")
    assert_error(await client.post(url, json=body, headers=auth_header(newcomer["access_token"])), 404, "not_found")
    assert_error(await client.post(url, json=body), 401, "unauthorized")
    presenter_id = people["presenter"]["user"]["id"]
    assert_error(await client.delete(f"{url}/{presenter_id}", headers=presenter), 403, "forbidden")
    assert_error(await client.delete(f"{url}/{people['participant']['user']['id']}", headers=owner), 404, "not_found")
    assert_error(await client.delete(f"{url}/{uuid.uuid4()}", headers=owner), 404, "not_found")
    assert_error(await client.delete(f"{url}/not-a-uuid", headers=owner), 404, "not_found")
    assert (await client.get(f"{API}/meetings/{meeting['id']}", headers=presenter)).status_code == 200


# --- join ----------------------------------------------------------------------------------


async def test_join_as_guest_and_as_user(client: Client, database_url: str) -> None:
    owner = await register_user(client)
    meeting = await create_meeting(client, owner["access_token"])  # scheduled meetings can be joined
    code = meeting["join_code"]

    response = await client.post(
        f"{API}/meetings/join", json={"join_code": f" {code[:4].lower()}-{code[4:]} ", "display_name": " Gus "}
    )
    assert response.status_code == 200, response.text
    guest = response.json()
    assert set(guest) == {"meeting_id", "guest_token", "expires_in"}
    assert guest["meeting_id"] == meeting["id"]
    assert isinstance(guest["expires_in"], int) and guest["expires_in"] > 0

    user = await register_user(client)
    response = await client.post(
        f"{API}/meetings/join", json={"join_code": code}, headers=auth_header(user["access_token"])
    )
    assert response.status_code == 200
    assert response.json() == {"meeting_id": meeting["id"]}
    again = await client.post(
        f"{API}/meetings/join",
        json={"join_code": code, "display_name": "ignored"},
        headers=auth_header(user["access_token"]),
    )
    assert again.json() == {"meeting_id": meeting["id"]}
    assert (await join_as_user(client, owner["access_token"], code)) == {"meeting_id": meeting["id"]}
    same_guest = await client.post(
        f"{API}/meetings/join", json={"join_code": code}, headers=auth_header(guest["guest_token"])
    )
    assert same_guest.json() == {"meeting_id": meeting["id"]}

    connection = await asyncpg.connect(database_url)
    try:
        members = await connection.fetch('SELECT "user", role FROM meeting_members')
        guest_row = await connection.fetchrow(
            "SELECT display_name, email, password_hash, guest_meeting_id FROM users WHERE guest_meeting_id IS NOT NULL"
        )
    finally:
        await connection.close()
    assert [(str(m["user"]), m["role"]) for m in members] == [(user["user"]["id"], "participant")]
    assert guest_row["display_name"] == "Gus" and guest_row["email"] is None and guest_row["password_hash"] is None
    assert str(guest_row["guest_meeting_id"]) == meeting["id"]


async def test_join_failures(client: Client, database_url: str) -> None:
    owner = await register_user(client)
    token = owner["access_token"]
    ended = await live_meeting(client, token)
    await set_status(client, token, ended["id"], "ended")
    cancelled = await create_meeting(client, token)
    await set_status(client, token, cancelled["id"], "cancelled")
    open_meeting = await live_meeting(client, token)
    other = await live_meeting(client, token)
    other_guest = await join_as_guest(client, other["join_code"])
    before = await table_rows(database_url)

    async def join(body: Any, headers: dict[str, str] | None = None) -> Any:
        return await client.post(f"{API}/meetings/join", json=body, headers=headers)

    assert_error(await join({"join_code": "ZZZZZZZZ", "display_name": "x"}), 404, "not_found")
    assert_error(await join({"join_code": "short", "display_name": "x"}), 404, "not_found")
    assert_error(await join({"join_code": "", "display_name": "x"}), 404, "not_found")
    assert_error(await join({"join_code": ended["join_code"], "display_name": "x"}), 409, "conflict")
    assert_error(await join({"join_code": cancelled["join_code"], "display_name": "x"}), 409, "conflict")
    assert_error(await join({"join_code": ended["join_code"]}, auth_header(token)), 409, "conflict")
    for body in (
        {"join_code": open_meeting["join_code"]},
        {"join_code": open_meeting["join_code"], "display_name": ""},
        {"join_code": open_meeting["join_code"], "display_name": "   "},
        {"join_code": open_meeting["join_code"], "display_name": "x" * 81},
        {"join_code": open_meeting["join_code"], "display_name": 7},
        {"join_code": 12345678, "display_name": "x"},
        {"display_name": "x"},
    ):
        assert_error(await join(body), 422, "validation_error")
    assert_error(
        await join({"join_code": open_meeting["join_code"], "display_name": "x"}, auth_header("bad")),
        401,
        "unauthorized",
    )
    assert_error(
        await join(
            {"join_code": open_meeting["join_code"], "display_name": "x"}, auth_header(other_guest["guest_token"])
        ),
        403,
        "forbidden",
    )
    assert await table_rows(database_url) == before
    await join_as_guest(client, open_meeting["join_code"], "x" * 80)


async def test_a_guest_token_is_good_for_its_meeting_only(client: Client) -> None:
    owner = (await register_user(client))["access_token"]
    first = await live_meeting(client, owner)
    second = await live_meeting(client, owner)
    guest = auth_header((await join_as_guest(client, first["join_code"]))["guest_token"])
    assert_error(await client.get(f"{API}/meetings/{first['id']}", headers=guest), 403, "forbidden")
    assert_error(await client.get(f"{API}/meetings/{second['id']}", headers=guest), 404, "not_found")
    assert_error(await client.patch(f"{API}/meetings/{second['id']}", json={}, headers=guest), 404, "not_found")


async def test_join_is_limited_per_client_address(settings: Settings) -> None:
    async with client_with(settings, join_per_minute=3) as client:
        owner = (await register_user(client))["access_token"]
        meeting = await live_meeting(client, owner)
        for _ in range(3):
            await join_as_guest(client, meeting["join_code"])
        response = await client.post(
            f"{API}/meetings/join", json={"join_code": meeting["join_code"], "display_name": "x"}
        )
        assert_error(response, 429, "rate_limited")
        assert 0 < int(response.headers["retry-after"]) <= 60
