"""Poll setup over REST: create, list, edit until opened, delete, validation, roles, and the CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from tests.helpers import assert_error
from tests.polls.conftest import Room, action, create, respond, rest


async def test_create_each_kind_with_defaults_and_list_by_position(room: Room) -> None:
    choice = await create(room, "choice", "Lunch?", options=["Pizza", " Salad "], multiple=True)
    rating = await create(room, "rating", "How was it?", scale_max=10, anonymous=False)
    cloud = await create(room, "word_cloud", "One word", show_results="closed")

    assert choice["status"] == "draft" and choice["meeting_id"] == room.meeting_id
    assert [o["text"] for o in choice["options"]] == ["Pizza", "Salad"]
    assert len({o["id"] for o in choice["options"]}) == 2
    assert (choice["multiple"], choice["anonymous"], choice["show_results"]) == (True, True, "live")
    assert (choice["opened_at"], choice["closed_at"]) == (None, None)
    assert choice["results"] == {"respondents": 0, "counts": {o["id"]: 0 for o in choice["options"]}}
    assert (rating["scale_max"], rating["anonymous"], rating["options"]) == (10, False, [])
    assert rating["results"] == {"respondents": 0, "counts": {str(n): 0 for n in range(1, 11)}, "average": None}
    assert (cloud["scale_max"], cloud["show_results"]) == (5, "closed")
    assert cloud["results"] == {"respondents": 0, "words": []}
    assert [p["position"] for p in (choice, rating, cloud)] == [0, 1, 2]

    listed = (await rest(room, "GET")).json()
    assert [p["id"] for p in listed["items"]] == [choice["id"], rating["id"], cloud["id"]]
    assert set(listed["items"][0]) == {
        "id", "meeting_id", "kind", "title", "options", "multiple", "scale_max", "anonymous",
        "show_results", "status", "position", "created_at", "opened_at", "closed_at", "results",
    }  # fmt: skip

    moved = await rest(room, "PATCH", f"/{cloud['id']}", json={"position": 0})
    assert moved.status_code == 200 and moved.json()["position"] == 0
    last = await rest(room, "PATCH", f"/{choice['id']}", json={"position": 99})
    assert last.json()["position"] == 2
    listed = (await rest(room, "GET")).json()["items"]
    assert [(p["id"], p["position"]) for p in listed] == [(cloud["id"], 0), (rating["id"], 1), (choice["id"], 2)]


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"kind": "quiz", "title": "t"}, "kind"),
    ({"title": "t"}, "kind"),
    ({"kind": "rating"}, "title"),
    ({"kind": "rating", "title": "   "}, "title"),
    ({"kind": "rating", "title": "x" * 201}, "title"),
    ({"kind": "rating", "title": 5}, "title"),
    ({"kind": "rating", "title": "bell\u0007"}, "title"),
    ({"kind": "choice", "title": "t"}, "options"),
    ({"kind": "choice", "title": "t", "options": ["only one"]}, "options"),
    ({"kind": "choice", "title": "t", "options": [str(n) for n in range(13)]}, "options"),
    ({"kind": "choice", "title": "t", "options": ["Yes", "yes"]}, "options[1]"),
    ({"kind": "choice", "title": "t", "options": ["Yes", " "]}, "options[1]"),
    ({"kind": "choice", "title": "t", "options": ["Yes", "x" * 121]}, "options[1]"),
    ({"kind": "choice", "title": "t", "options": ["Yes", 2]}, "options[1]"),
    ({"kind": "rating", "title": "t", "options": ["a", "b"]}, "options"),
    ({"kind": "rating", "title": "t", "multiple": True}, "multiple"),
    ({"kind": "rating", "title": "t", "scale_max": 1}, "scale_max"),
    ({"kind": "rating", "title": "t", "scale_max": 11}, "scale_max"),
    ({"kind": "rating", "title": "t", "scale_max": "5"}, "scale_max"),
    ({"kind": "rating", "title": "t", "anonymous": "yes"}, "anonymous"),
    ({"kind": "rating", "title": "t", "show_results": "sometimes"}, "show_results"),
    ({"kind": "rating", "title": "t", "status": "open"}, "status"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    room: Room, body: dict[str, Any], field: str
) -> None:
    error = assert_error(await rest(room, "POST", json=body), 422, "validation_error")
    assert error["details"][0]["key"] == field, error
    assert (await rest(room, "GET")).json() == {"items": []}


async def test_malformed_bodies_are_400(room: Room) -> None:
    assert_error(await rest(room, "POST", content=b"{nope"), 400, "bad_request")
    assert (await rest(room, "GET")).json() == {"items": []}


async def test_edits_until_first_opened_then_only_show_results_and_position(room: Room) -> None:
    poll = await create(room, options=["A", "B", "C"])
    edited = await rest(room, "PATCH", f"/{poll['id']}", json={"title": "New title", "options": ["b", "A", "D"]})
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["title"] == "New title"
    ids = {o["text"]: o["id"] for o in poll["options"]}
    assert [(o["text"], o["id"] == ids.get(o["text"].upper())) for o in body["options"]] == [
        ("b", True),  # the same text (ignoring case) keeps its id
        ("A", True),
        ("D", False),
    ]
    to_rating = await rest(room, "PATCH", f"/{poll['id']}", json={"kind": "rating", "options": None})
    assert to_rating.status_code == 200 and to_rating.json()["options"] == []
    assert_error(await rest(room, "PATCH", f"/{poll['id']}", json={"kind": "choice"}), 422, "validation_error")
    assert_error(await rest(room, "PATCH", f"/{poll['id']}", json={"scale_max": 12}), 422, "validation_error")
    assert_error(await rest(room, "PATCH", f"/{poll['id']}", json={"nope": 1}), 422, "validation_error")

    moderator = await room.moderator()
    assert (await moderator.request(action(room.moderation, poll["id"], "open")))["type"] == "reply"
    for change in ({"title": "x"}, {"scale_max": 3}, {"anonymous": False}, {"kind": "word_cloud"}):
        assert_error(await rest(room, "PATCH", f"/{poll['id']}", json=change), 409, "conflict")
    await moderator.request(action(room.moderation, poll["id"], "close"))
    assert_error(await rest(room, "PATCH", f"/{poll['id']}", json={"title": "x"}), 409, "conflict")
    allowed = await rest(room, "PATCH", f"/{poll['id']}", json={"show_results": "never", "position": 0})
    assert allowed.status_code == 200
    assert (allowed.json()["show_results"], allowed.json()["title"]) == ("never", "New title")


async def test_roles_and_unknown_polls(room: Room) -> None:
    poll = await create(room)
    participant = await room.pair.world.participant(room.meeting_id, await room.pair.world.user("Pia"))
    stranger = await room.pair.world.user("Stranger")
    assert (await rest(room, "GET", token=room.owner.token)).status_code == 200
    assert_error(await rest(room, "GET", token=participant.token), 403, "forbidden")
    body = {"kind": "rating", "title": "t"}
    assert_error(await rest(room, "POST", token=participant.token, json=body), 403, "forbidden")
    assert_error(await rest(room, "GET", token=stranger.token), 404, "not_found")
    assert_error(await rest(room, "DELETE", f"/{poll['id']}", token=stranger.token), 404, "not_found")
    assert_error(await rest(room, "GET", ".csv", token=participant.token), 403, "forbidden")
    unknown = "/00000000-0000-4000-8000-000000000000"
    assert_error(await rest(room, "PATCH", unknown, json={"title": "x"}), 404, "not_found")

    other_owner = await room.pair.world.user("Other")
    other_meeting = await room.pair.world.meeting(other_owner)
    async with httpx.AsyncClient() as http:
        foreign = await http.patch(
            f"{room.pair.servers[0].url}/api/v1/meetings/{other_meeting}/polls/{poll['id']}",
            json={"title": "hijack"},
            headers={"Authorization": f"Bearer {other_owner.token}"},
        )
    assert_error(foreign, 404, "not_found")  # a poll id of another meeting is no poll there
    assert (await rest(room, "GET")).json()["items"][0]["title"] == "Lunch?"


async def test_delete_removes_the_poll_and_its_answers(room: Room) -> None:
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    poll = await create(room)
    await moderator.request(action(room.moderation, poll["id"], "open"))
    await alice.request(respond(room.public, poll["id"], option_ids=[poll["options"][0]["id"]]))
    assert (await rest(room, "DELETE", f"/{poll['id']}")).status_code == 204
    removed = await alice.wait_for(lambda f: f["type"] == "poll.removed")
    assert removed == {"type": "poll.removed", "room": room.public, "poll_id": poll["id"], "seq": removed["seq"]}
    await moderator.wait_for(lambda f: f["type"] == "poll.removed" and f["room"] == room.moderation)
    assert await room.sql("SELECT 1 FROM poll_responses WHERE poll = $1", poll["id"]) == []
    assert_error(await rest(room, "DELETE", f"/{poll['id']}"), 404, "not_found")


async def test_drafts_reach_only_the_moderation_room(room: Room) -> None:
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    poll = await create(room)
    created = await moderator.wait_for(lambda f: f["type"] == "poll.updated" and f["room"] == room.moderation)
    assert created["poll"]["id"] == poll["id"]
    await rest(room, "PATCH", f"/{poll['id']}", json={"title": "Dinner?"})
    await moderator.wait_for(lambda f: f["type"] == "poll.updated" and f["poll"]["title"] == "Dinner?")
    await rest(room, "DELETE", f"/{poll['id']}")
    await moderator.wait_for(lambda f: f["type"] == "poll.removed")
    assert [f for f in alice.frames if f["type"].startswith("poll.")] == []
    assert (await alice.join(room.public))["snapshot"]["polls"] == []


async def test_export_one_row_per_answer_formula_safe_and_anonymous_blank(room: Room) -> None:
    _, alice = await room.participant("=HYPERLINK(evil)")
    _, bob = await room.participant("Bob")
    moderator = await room.moderator()
    named = await create(room, "choice", "=1+1", options=["@sum", "-minus", "plain"], multiple=True, anonymous=False)
    secret = await create(room, "word_cloud", "Secret words")
    rating = await create(room, "rating", "Rate", anonymous=False)

    await moderator.request(action(room.moderation, named["id"], "open"))
    options = [o["id"] for o in named["options"]]
    await alice.request(respond(room.public, named["id"], option_ids=[options[0], options[1]]))
    await bob.request(respond(room.public, named["id"], option_ids=[options[2]]))
    await moderator.request(action(room.moderation, secret["id"], "open"))
    await alice.request(respond(room.public, secret["id"], words=["+cmd", "tea"]))
    await bob.request(respond(room.public, secret["id"], words=["coffee"]))
    await moderator.request(action(room.moderation, rating["id"], "open"))
    await bob.request(respond(room.public, rating["id"], value=4))

    response = await rest(room, "GET", ".csv", token=room.owner.token)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == ["poll_id", "poll", "kind", "answer", "respondent", "answered_at"]
    assert len(rows) == 5
    by_poll: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_poll.setdefault(row["poll_id"], []).append(row)
    assert {(r["answer"], r["respondent"]) for r in by_poll[named["id"]]} == {
        ("'@sum; -minus", "'=HYPERLINK(evil)"),
        ("plain", "Bob"),
    }
    assert by_poll[named["id"]][0]["poll"] == "'=1+1"
    assert {(r["answer"], r["respondent"]) for r in by_poll[secret["id"]]} == {("'+cmd; tea", ""), ("coffee", "")}
    assert [(r["kind"], r["answer"], r["respondent"]) for r in by_poll[rating["id"]]] == [("rating", "4", "Bob")]
    assert all(r["answered_at"].endswith("Z") for r in rows)
    assert "HYPERLINK" not in "".join(r["respondent"] for r in by_poll[secret["id"]])
