"""Account self-service over REST (SPEC section 3): profile, password, sessions, export, deletion, errors.

These run the real app in this process against this test's database and Redis prefix; the mail
and socket parts run against real server processes in test_reset_mail.py and test_revocation_sockets.py.
"""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.helpers import (
    API,
    PASSWORD,
    assert_error,
    auth_header,
    create_api_key,
    join_as_guest,
    live_meeting,
    login,
    register_user,
    unique_email,
)

NEW_PASSWORD = "a brand new passphrase"


async def ask_and_vote(database_url: str, meeting_id: str, *, asker: str, voter: str) -> dict[str, str]:
    """`voter` joins the meeting, asks a question and upvotes one `asker` asked (rows written directly)."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """INSERT INTO meeting_members (id, meeting, "user", role)
               VALUES (gen_random_uuid(), $1, $2, 'participant')""",
            meeting_id,
            voter,
        )
        theirs = await connection.fetchval(
            """INSERT INTO questions (id, meeting, author, text, status, votes)
               VALUES (gen_random_uuid(), $1, $2, 'Hilda asks first', 'live', 1) RETURNING id""",
            meeting_id,
            asker,
        )
        mine = await connection.fetchval(
            """INSERT INTO questions (id, meeting, author, text, status)
               VALUES (gen_random_uuid(), $1, $2, 'A question from the voter', 'live') RETURNING id""",
            meeting_id,
            voter,
        )
        await connection.execute('INSERT INTO votes (question, "user") VALUES ($1, $2)', theirs, voter)
        poll = await connection.fetchval(
            """INSERT INTO polls (id, meeting, kind, title, options, status, opened_at, anonymous)
               VALUES (gen_random_uuid(), $1, 'choice', 'Coffee or tea?',
                       '[{"id": "c", "text": "Coffee"}, {"id": "t", "text": "Tea"}]', 'open', now(), false)
               RETURNING id""",
            meeting_id,
        )
        await connection.execute(
            """INSERT INTO poll_responses (poll, "user", option_ids) VALUES ($1, $2, '{t}'), ($1, $3, '{c}')""",
            poll,
            voter,
            asker,
        )
    finally:
        await connection.close()
    return {"hilda_question": str(theirs), "leaver_question": str(mine), "poll": str(poll)}


async def me(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get(f"{API}/me", headers=auth_header(token))


# --- PATCH /me ---------------------------------------------------------------------------------


async def test_patch_display_name(client: httpx.AsyncClient) -> None:
    session = await register_user(client)
    headers = auth_header(session["access_token"])
    response = await client.patch(f"{API}/me", json={"display_name": "  Renamed Person "}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "Renamed Person"
    assert response.json()["email"] == session["user"]["email"]
    assert (await me(client, session["access_token"])).json()["display_name"] == "Renamed Person"


async def test_patch_email_needs_the_current_password(client: httpx.AsyncClient) -> None:
    session = await register_user(client)
    headers = auth_header(session["access_token"])
    new_email = unique_email("moved")
    assert_error(await client.patch(f"{API}/me", json={"email": new_email}, headers=headers), 401, "unauthorized")
    wrong = {"email": new_email, "current_password": "not my password"}
    assert_error(await client.patch(f"{API}/me", json=wrong, headers=headers), 401, "unauthorized")
    assert (await me(client, session["access_token"])).json()["email"] == session["user"]["email"]

    right = {"email": new_email.upper(), "current_password": PASSWORD}
    response = await client.patch(f"{API}/me", json=right, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == new_email
    await login(client, new_email)
    failed = await client.post(f"{API}/auth/login", json={"email": session["user"]["email"], "password": PASSWORD})
    assert_error(failed, 401, "unauthorized")


async def test_patch_email_taken_is_409_and_changes_nothing(client: httpx.AsyncClient) -> None:
    other = await register_user(client)
    session = await register_user(client, display_name="Keeps Name")
    body = {"email": other["user"]["email"].upper(), "current_password": PASSWORD, "display_name": "Changed"}
    response = await client.patch(f"{API}/me", json=body, headers=auth_header(session["access_token"]))
    assert_error(response, 409, "conflict")
    assert (await me(client, session["access_token"])).json() == session["user"]


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "   "},
        {"display_name": "x" * 81},
        {"email": "not-an-email", "current_password": PASSWORD},
        {"display_name": 7},
        {"nickname": "x"},
    ],
)
async def test_patch_bad_input_is_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    session = await register_user(client)
    response = await client.patch(f"{API}/me", json=body, headers=auth_header(session["access_token"]))
    assert_error(response, 422, "validation_error")
    assert (await me(client, session["access_token"])).json() == session["user"]


async def test_me_endpoints_refuse_strangers_and_guests(client: httpx.AsyncClient) -> None:
    owner = await register_user(client)
    meeting = await live_meeting(client, owner["access_token"])
    guest = await join_as_guest(client, meeting["join_code"])
    calls = [
        ("PATCH", "/me", {"display_name": "x"}),
        ("POST", "/me/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        ("GET", "/me/sessions", None),
        ("DELETE", "/me/sessions/00000000-0000-0000-0000-000000000000", None),
        ("GET", "/me/export", None),
        ("DELETE", "/me", {"password": PASSWORD}),
    ]
    for method, path, body in calls:
        assert_error(await client.request(method, API + path, json=body), 401, "unauthorized")
        guest_call = await client.request(method, API + path, json=body, headers=auth_header(guest["guest_token"]))
        assert_error(guest_call, 403, "forbidden")


# --- POST /me/password -------------------------------------------------------------------------


async def test_password_change_revokes_every_other_login(client: httpx.AsyncClient) -> None:
    first = await register_user(client)
    email = first["user"]["email"]
    other = await login(client, email)
    headers = auth_header(first["access_token"])

    wrong = {"current_password": "nope nope nope", "new_password": NEW_PASSWORD}
    assert_error(await client.post(f"{API}/me/password", json=wrong, headers=headers), 401, "unauthorized")
    weak = {"current_password": PASSWORD, "new_password": "short"}
    error = assert_error(await client.post(f"{API}/me/password", json=weak, headers=headers), 422, "validation_error")
    assert error["details"][0]["key"] == "new_password"
    assert (await me(client, other["access_token"])).status_code == 200  # nothing changed yet

    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    response = await client.post(f"{API}/me/password", json=body, headers=headers)
    assert response.status_code == 200, response.text
    session = response.json()
    assert set(session) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    assert session["user"] == first["user"]

    assert_error(await me(client, other["access_token"]), 401, "unauthorized")
    refused = await client.post(f"{API}/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert_error(refused, 401, "unauthorized")
    assert (await me(client, session["access_token"])).status_code == 200
    renewed = await client.post(f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    old = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert_error(old, 401, "unauthorized")
    await login(client, email, NEW_PASSWORD)


async def test_password_change_with_api_key(client: httpx.AsyncClient) -> None:
    """An API key is not a login: the answer is a new login, and every login is revoked."""
    first = await register_user(client)
    key = (await create_api_key(client, first["access_token"]))["key"]
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    response = await client.post(f"{API}/me/password", json=body, headers=auth_header(key))
    assert response.status_code == 200, response.text
    assert_error(await me(client, first["access_token"]), 401, "unauthorized")
    assert (await me(client, response.json()["access_token"])).status_code == 200
    assert (await me(client, key)).status_code == 200


# --- sessions ----------------------------------------------------------------------------------


async def test_sessions_list_and_revoke(client: httpx.AsyncClient) -> None:
    first = await register_user(client)
    email = first["user"]["email"]
    phone = (
        await client.post(
            f"{API}/auth/login", json={"email": email, "password": PASSWORD}, headers={"User-Agent": "PhoneBrowser/1.0"}
        )
    ).json()
    headers = auth_header(first["access_token"])
    sessions = (await client.get(f"{API}/me/sessions", headers=headers)).json()
    assert len(sessions) == 2
    assert {frozenset(s) for s in sessions} == {
        frozenset({"id", "created_at", "last_used_at", "user_agent", "current"})
    }
    current = [s for s in sessions if s["current"]]
    others = [s for s in sessions if not s["current"]]
    assert len(current) == 1 and len(others) == 1
    assert others[0]["user_agent"] == "PhoneBrowser/1.0"
    assert others[0]["created_at"].endswith("Z")

    # a refresh keeps the login (same id) and moves last_used_at
    refreshed = (await client.post(f"{API}/auth/refresh", json={"refresh_token": phone["refresh_token"]})).json()
    after = (await client.get(f"{API}/me/sessions", headers=headers)).json()
    assert {s["id"] for s in after} == {s["id"] for s in sessions}
    phone_now = next(s for s in after if s["id"] == others[0]["id"])
    assert phone_now["last_used_at"] >= others[0]["last_used_at"]
    assert phone_now["user_agent"] == "PhoneBrowser/1.0"
    assert after[0]["id"] == others[0]["id"]  # most recently used first

    response = await client.delete(f"{API}/me/sessions/{others[0]['id']}", headers=headers)
    assert response.status_code == 204, response.text
    assert_error(await me(client, refreshed["access_token"]), 401, "unauthorized")
    gone = await client.post(f"{API}/auth/refresh", json={"refresh_token": refreshed["refresh_token"]})
    assert_error(gone, 401, "unauthorized")
    remaining = (await client.get(f"{API}/me/sessions", headers=headers)).json()
    assert [s["id"] for s in remaining] == [current[0]["id"]]
    again = await client.delete(f"{API}/me/sessions/{others[0]['id']}", headers=headers)
    assert_error(again, 404, "not_found")


async def test_sessions_of_someone_else_are_404(client: httpx.AsyncClient) -> None:
    alice = await register_user(client)
    bob = await register_user(client)
    bob_session = (await client.get(f"{API}/me/sessions", headers=auth_header(bob["access_token"]))).json()[0]
    response = await client.delete(f"{API}/me/sessions/{bob_session['id']}", headers=auth_header(alice["access_token"]))
    assert_error(response, 404, "not_found")
    assert (await me(client, bob["access_token"])).status_code == 200
    bad = await client.delete(f"{API}/me/sessions/not-a-uuid", headers=auth_header(alice["access_token"]))
    assert bad.status_code in (400, 404, 422)


# --- export ------------------------------------------------------------------------------------


async def test_export_has_everything_about_the_caller_and_nothing_about_others(
    client: httpx.AsyncClient, database_url: str
) -> None:
    host = await register_user(client, display_name="Hilda Host")
    me_session = await register_user(client, display_name="Exporting Erin")
    my_meeting = await live_meeting(client, me_session["access_token"], "Erin's own meeting")
    their_meeting = await live_meeting(client, host["access_token"], "Hilda's town hall")
    key = await create_api_key(client, me_session["access_token"], "laptop script")
    ids = await ask_and_vote(
        database_url, their_meeting["id"], asker=host["user"]["id"], voter=me_session["user"]["id"]
    )

    response = await client.get(f"{API}/me/export", headers=auth_header(me_session["access_token"]))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["profile"] == me_session["user"]
    assert [m["id"] for m in data["meetings_owned"]] == [my_meeting["id"]]
    assert [m["meeting_title"] for m in data["memberships"]] == ["Hilda's town hall"]
    assert [q["text"] for q in data["questions"]] == ["A question from the voter"]
    assert data["questions"][0]["meeting_title"] == "Hilda's town hall"
    assert [v["question_id"] for v in data["votes"]] == [ids["hilda_question"]]
    assert data["api_keys"] == [
        {"id": key["id"], "name": "laptop script", "created_at": key["created_at"], "last_used_at": None}
    ]
    assert len(data["sessions"]) == 1 and data["sessions"][0]["current"] is True
    assert data["calendar_connections"] == []
    (answer,) = data["poll_answers"]
    assert answer["poll_id"] == ids["poll"] and answer["poll_title"] == "Coffee or tea?"
    assert answer["answer"] == {"options": [{"id": "t", "text": "Tea"}]}
    text = response.text
    for foreign in (host["user"]["display_name"], host["user"]["email"], host["user"]["id"], "Hilda asks first"):
        assert foreign not in text
    assert "password" not in text and key["key"] not in text and me_session["refresh_token"] not in text


# --- DELETE /me --------------------------------------------------------------------------------


async def test_delete_account(client: httpx.AsyncClient, database_url: str) -> None:
    host = await register_user(client, display_name="Hilda Host")
    leaver = await register_user(client, display_name="Leaving Leo")
    owned = await live_meeting(client, leaver["access_token"], "Leo's meeting")
    meeting = await live_meeting(client, host["access_token"], "Hilda's town hall")
    ids = await ask_and_vote(database_url, meeting["id"], asker=host["user"]["id"], voter=leaver["user"]["id"])
    await create_api_key(client, leaver["access_token"])
    headers = auth_header(leaver["access_token"])

    assert_error(
        await client.request("DELETE", f"{API}/me", json={"password": "wrong one!"}, headers=headers),
        401,
        "unauthorized",
    )
    assert (await client.request("DELETE", f"{API}/me", headers=headers)).status_code in (400, 422)
    assert_error(await client.request("DELETE", f"{API}/me", json={}, headers=headers), 422, "validation_error")
    assert (await me(client, leaver["access_token"])).status_code == 200

    response = await client.request("DELETE", f"{API}/me", json={"password": PASSWORD}, headers=headers)
    assert response.status_code == 204, response.text
    assert_error(await me(client, leaver["access_token"]), 401, "unauthorized")
    refused = await client.post(f"{API}/auth/login", json={"email": leaver["user"]["email"], "password": PASSWORD})
    assert_error(refused, 401, "unauthorized")
    host_headers = auth_header(host["access_token"])
    # the owned meeting is gone (for its owner too, who no longer exists)
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM meetings WHERE id = $1", owned["id"]) == 0
        for table in ("api_keys", "refresh_tokens", "notifications", "meeting_members"):
            assert (
                await connection.fetchval(f'SELECT count(*) FROM {table} WHERE "user" = $1', leaver["user"]["id"]) == 0
            )
    finally:
        await connection.close()
    csv = await client.get(f"{API}/meetings/{meeting['id']}/questions.csv", headers=host_headers)
    assert csv.status_code == 200
    assert "Leaving Leo" not in csv.text and "A question from the voter" in csv.text
    rows = {line.split(",")[0]: line for line in csv.text.splitlines()[1:]}
    assert rows[ids["leaver_question"]].split(",")[4] == ""  # author blank
    assert rows[ids["hilda_question"]].split(",")[3] == "1"  # Leo's vote still counts
    polls = await client.get(f"{API}/meetings/{meeting['id']}/polls", headers=host_headers)
    (poll,) = polls.json()["items"]
    assert poll["results"]["respondents"] == 2 and poll["results"]["counts"] == {"c": 1, "t": 1}
    answers = await client.get(f"{API}/meetings/{meeting['id']}/polls.csv", headers=host_headers)
    assert answers.status_code == 200 and "Leaving Leo" not in answers.text and "Hilda Host" in answers.text
    # the email is free again
    await register_user(client, leaver["user"]["email"])
