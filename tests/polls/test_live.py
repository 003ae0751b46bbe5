"""Running polls live over real sockets on two server processes: actions, answers, visibility, anonymity."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from tests.polls.conftest import Room, action, create, opened, respond
from tests.qa.conftest import ask, moderate
from tests.wsclient import WsClient

NO_POLL = "00000000-0000-4000-8000-000000000000"


def poll_frames(ws: WsClient) -> list[dict[str, object]]:
    return [f for f in ws.frames if str(f.get("type", "")).startswith("poll.")]


async def still_open(ws: WsClient) -> None:
    assert (await ws.request({"type": "ping"}))["type"] == "pong"


async def test_only_moderators_run_polls_and_each_refusal_has_its_code(room: Room) -> None:
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    poll = await create(room)
    assert (await alice.request(action(room.public, poll["id"], "open")))["code"] == "forbidden"
    assert (await moderator.request(action(room.moderation, poll["id"], "close")))["code"] == "conflict"
    assert (await moderator.request(action(room.moderation, poll["id"], "reset")))["code"] == "conflict"
    assert (await moderator.request(action(room.moderation, poll["id"], "open")))["type"] == "reply"
    assert (await moderator.request(action(room.moderation, poll["id"], "open")))["code"] == "conflict"
    assert (await moderator.request(action(room.moderation, poll["id"], "reset")))["code"] == "conflict"
    assert (await moderator.request(action(room.moderation, NO_POLL, "close")))["code"] == "not_found"
    assert (await moderator.request(action(room.moderation, "not-a-uuid", "close")))["code"] == "bad_request"
    assert (await moderator.request(action(room.moderation, poll["id"], "explode")))["code"] == "bad_request"
    assert (await moderator.request(action("meeting:nope", poll["id"], "close")))["code"] == "not_found"
    closed = await moderator.request(action(room.public, poll["id"], "close"))  # either meeting room will do
    assert closed["data"]["poll"]["status"] == "closed"
    await still_open(alice)
    await still_open(moderator)


async def test_opening_one_poll_closes_the_other_in_the_database_too(room: Room) -> None:
    _, alice = await room.participant("Alice")
    first = await opened(room)
    second = await create(room, "rating", "Rate it")
    moderator = await room.moderator()
    answer = await moderator.request(action(room.moderation, second["id"], "open"))
    assert answer["data"]["poll"]["status"] == "open"
    await alice.wait_count(lambda f: f["type"] in ("poll.opened", "poll.closed"), 3)
    seen = [(f["type"], f["poll"]["id"]) for f in alice.frames if f["type"] in ("poll.opened", "poll.closed")]
    assert seen == [("poll.opened", first["id"]), ("poll.closed", first["id"]), ("poll.opened", second["id"])]
    rows = await room.sql("SELECT id::text FROM polls WHERE meeting = $1 AND status = 'open'", room.meeting_id)
    assert [r["id"] for r in rows] == [second["id"]]
    with pytest.raises(asyncpg.UniqueViolationError):
        await room.sql("UPDATE polls SET status = 'open' WHERE id = $1", first["id"])


async def test_two_presenters_opening_at_once_on_two_servers_leave_one_open(room: Room) -> None:
    polls = [await create(room, title=f"Poll {n}") for n in range(6)]
    presenters = [await room.moderator(server=0), await room.moderator(server=1)]
    watcher = (await room.participant("Watcher", server=1))[1]
    answers = await asyncio.gather(
        *(presenters[n % 2].request(action(room.moderation, poll["id"], "open")) for n, poll in enumerate(polls))
    )
    assert all(answer["type"] == "reply" for answer in answers)
    rows = await room.sql("SELECT id::text FROM polls WHERE meeting = $1 AND status = 'open'", room.meeting_id)
    assert len(rows) == 1
    await watcher.wait_count(lambda f: f["type"] == "poll.opened", 6)
    await asyncio.sleep(0.3)
    state: dict[str, str] = {}
    for frame in watcher.events(room.public):
        if frame["type"] in ("poll.opened", "poll.closed"):
            state[frame["poll"]["id"]] = frame["poll"]["status"]
    assert [poll_id for poll_id, status in state.items() if status == "open"] == [rows[0]["id"]]


async def test_one_answer_per_user_replaced_while_open_refused_otherwise(room: Room) -> None:
    person, alice = await room.participant("Alice")
    moderator = await room.moderator()
    poll = await opened(room, options=["A", "B", "C"], multiple=True)
    a, b, c = (o["id"] for o in poll["options"])
    first = await alice.request(respond(room.public, poll["id"], option_ids=[a, b]))
    assert first["data"] == {"poll_id": poll["id"], "response": {"option_ids": [a, b]}}
    second = await alice.request(respond(room.public, poll["id"], option_ids=[c]))
    assert second["data"]["response"] == {"option_ids": [c]}
    results = await moderator.wait_for(
        lambda f: f["type"] == "poll.results" and f["results"]["counts"][c] == 1, timeout=5
    )
    assert results["results"] == {"respondents": 1, "counts": {a: 0, b: 0, c: 1}}
    rows = await room.sql(
        'SELECT option_ids FROM poll_responses WHERE poll = $1 AND "user" = $2', poll["id"], person.id
    )
    assert [r["option_ids"] for r in rows] == [[c]]

    await moderator.request(action(room.moderation, poll["id"], "close"))
    assert (await alice.request(respond(room.public, poll["id"], option_ids=[a])))["code"] == "conflict"
    draft = await create(room)
    refused = await alice.request(respond(room.public, draft["id"], option_ids=[draft["options"][0]["id"]]))
    assert refused["code"] == "conflict"
    assert (await alice.request(respond(room.public, NO_POLL, option_ids=[a])))["code"] == "not_found"

    assert (await moderator.request(action(room.moderation, poll["id"], "open")))["type"] == "reply"
    assert (await alice.request(respond(room.public, poll["id"], option_ids=[a])))["type"] == "reply"
    await moderator.request(action(room.moderation, poll["id"], "close"))
    reset = await moderator.request(action(room.moderation, poll["id"], "reset"))
    assert reset["data"]["poll"]["results"] == {"respondents": 0, "counts": {a: 0, b: 0, c: 0}}
    updated = await alice.wait_for(lambda f: f["type"] == "poll.updated" and f["poll"]["id"] == poll["id"])
    assert updated["poll"]["results"]["respondents"] == 0
    assert (await alice.join(room.public))["snapshot"]["mine"]["responses"] == {}


@pytest.mark.parametrize(
    ("kind", "fields", "answer"),
    [
        ("choice", {}, {"value": 1}),
        ("choice", {}, {"option_ids": [NO_POLL]}),
        ("choice", {}, {"option_ids": "A"}),
        ("choice", {}, {"option_ids": ["OPTION0", "OPTION1"]}),
        ("choice", {}, {"option_ids": ["OPTION0"], "words": ["x"]}),
        ("rating", {"scale_max": 3}, {"value": 4}),
        ("rating", {}, {"value": 0}),
        ("rating", {}, {"value": 2.5}),
        ("rating", {}, {"value": True}),
        ("rating", {}, {"option_ids": ["x"]}),
        ("word_cloud", {}, {"words": ["a", "b", "c", "d"]}),
        ("word_cloud", {}, {"words": ["x" * 26]}),
        ("word_cloud", {}, {"words": [" "]}),
        ("word_cloud", {}, {"words": [3]}),
        ("word_cloud", {}, {}),
    ],
)
async def test_bad_answers_are_bad_requests_and_store_nothing(
    room: Room, kind: str, fields: dict[str, object], answer: dict[str, object]
) -> None:
    poll = await opened(room, kind, **fields)
    _, alice = await room.participant("Alice")
    ids = [o["id"] for o in poll["options"]]
    text = json.dumps(answer)
    for n, option_id in enumerate(ids):
        text = text.replace(f"OPTION{n}", option_id)
    refused = await alice.request(respond(room.public, poll["id"], **json.loads(text)))
    assert refused["type"] == "error" and refused["code"] == "bad_request", refused
    assert await room.sql("SELECT 1 FROM poll_responses WHERE poll = $1", poll["id"]) == []
    await still_open(alice)


async def test_a_poll_of_another_meeting_is_not_found_there(room: Room) -> None:
    poll = await opened(room)
    other = await room.pair.world.meeting(room.owner, title="Other")
    async with room._stack:
        owner = await room.client(room.owner, rooms=(f"meeting:{other}",))
        for frame in (
            respond(f"meeting:{other}", poll["id"], option_ids=[poll["options"][0]["id"]]),
            action(f"meeting:{other}", poll["id"], "close"),
        ):
            assert (await owner.request(frame))["code"] == "not_found"
    rows = await room.sql("SELECT status FROM polls WHERE id = $1", poll["id"])
    assert rows[0]["status"] == "open"
    assert await room.sql("SELECT 1 FROM poll_responses WHERE poll = $1", poll["id"]) == []


async def test_muted_authors_still_answer_polls(room: Room) -> None:
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    question = (await alice.request(ask(room.public, "Spam", anonymous=True)))["data"]["question"]
    await moderator.request(moderate(room.moderation, question["id"], "mute_author"))
    assert (await alice.request(ask(room.public, "More spam")))["code"] == "forbidden"
    poll = await opened(room, "rating")
    assert (await alice.request(respond(room.public, poll["id"], value=5)))["type"] == "reply"
    assert (await alice.request({"type": "react", "room": room.public, "reaction": "love"}))["type"] == "reply"


async def test_show_results_decides_who_sees_results_in_events_and_snapshots(room: Room) -> None:
    _, alice = await room.participant("Alice")
    moderator = await room.moderator()
    polls = {
        show: await create(room, "rating", f"Show {show}", show_results=show) for show in ("live", "closed", "never")
    }
    for show, poll in polls.items():
        await moderator.request(action(room.moderation, poll["id"], "open"))
        await alice.request(respond(room.public, poll["id"], value=4))
        seen = await alice.wait_for(lambda f, p=poll: f["type"] == "poll.opened" and f["poll"]["id"] == p["id"])
        assert (seen["poll"]["results"] is None) == (show != "live"), show
        await moderator.wait_for(
            lambda f, p=poll: f["type"] == "poll.results" and f["poll_id"] == p["id"] and f["room"] == room.moderation
        )
        snapshot = (await alice.join(room.public))["snapshot"]["polls"]
        mine = next(p for p in snapshot if p["id"] == poll["id"])
        assert (mine["results"] is None) == (show != "live"), show
        moderators = (await moderator.join(room.moderation))["snapshot"]["polls"]
        assert next(p for p in moderators if p["id"] == poll["id"])["results"]["respondents"] == 1

    public_results = {f["poll_id"] for f in alice.events(room.public, "poll.results")}
    assert public_results == {polls["live"]["id"]}
    await moderator.request(action(room.moderation, polls["never"]["id"], "close"))
    closed = await alice.wait_for(lambda f: f["type"] == "poll.closed" and f["poll"]["id"] == polls["closed"]["id"])
    assert closed["poll"]["results"] == {
        "respondents": 1,
        "counts": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
        "average": 4.0,
    }
    never = await alice.wait_for(lambda f: f["type"] == "poll.closed" and f["poll"]["id"] == polls["never"]["id"])
    assert never["poll"]["results"] is None
    snapshot = {p["id"]: p for p in (await alice.join(room.public))["snapshot"]["polls"]}
    assert snapshot[polls["closed"]["id"]]["results"]["respondents"] == 1
    assert snapshot[polls["never"]["id"]]["results"] is None
    assert [p["position"] for p in snapshot.values()] == [0, 1, 2]


async def test_word_cloud_live_with_blocked_words(room: Room) -> None:
    await room.settings(blocked_words=["darn"])
    poll = await opened(room, "word_cloud")
    answers = [["Café", "Darn it"], ["Café", "tea"], ["cafe "], ["Tea"], ["tea"], ["darn"]]
    people = [(await room.participant(f"P{n}"))[1] for n in range(len(answers))]
    for ws, words in zip(people, answers, strict=True):
        assert (await ws.request(respond(room.public, poll["id"], words=words)))["type"] == "reply"
    final = await people[0].wait_for(
        lambda f: f["type"] == "poll.results" and f["results"]["respondents"] == 6, timeout=5
    )
    # one word whatever its case, accents and spaces, shown as most often spelt; "darn" counted nowhere
    assert final["results"]["words"] == [{"text": "Café", "count": 3}, {"text": "tea", "count": 3}]


async def test_own_answers_reach_other_tabs_and_come_back_after_a_reload(room: Room) -> None:
    person, phone = await room.participant("Alice", server=0)
    laptop = await room.client(person, rooms=(room.public,), server=1)
    _, bob = await room.participant("Bob")
    question = (await bob.request(ask(room.public, "Upvote me")))["data"]["question"]
    await phone.request({"type": "vote", "room": room.public, "question_id": question["id"], "up": True})
    poll = await opened(room, "rating")
    await phone.request(respond(room.public, poll["id"], value=3))
    told = await laptop.wait_for(lambda f: f["type"] == "poll.response")
    assert told == {
        "type": "poll.response",
        "room": f"user:{person.id}",
        "poll_id": poll["id"],
        "response": {"value": 3},
        "seq": told["seq"],
    }
    reloaded = await room.client(person, rooms=(), server=1)
    snapshot = (await reloaded.join(room.public))["snapshot"]
    assert snapshot["mine"] == {"votes": [question["id"]], "responses": {poll["id"]: {"value": 3}}}
    assert [f for f in bob.frames if f["type"] == "poll.response"] == []
    assert (await bob.join(room.public))["snapshot"]["mine"] == {"votes": [], "responses": {}}


async def test_nobody_learns_who_answered_an_anonymous_poll(room: Room) -> None:
    person, alice = await room.participant("Alice Anonymous")
    moderator = await room.moderator()
    owner = await room.client(room.owner, rooms=(room.public, room.moderation))
    poll = await opened(room, "word_cloud")
    await alice.request(respond(room.public, poll["id"], words=["secret"]))
    await moderator.wait_for(lambda f: f["type"] == "poll.results" and f["room"] == room.moderation)
    await owner.wait_for(lambda f: f["type"] == "poll.results" and f["room"] == room.moderation)
    await moderator.request(action(room.moderation, poll["id"], "close"))
    await owner.wait_for(lambda f: f["type"] == "poll.closed" and f["room"] == room.moderation)
    snapshot = (await owner.join(room.moderation))["snapshot"]
    for ws, extra in ((moderator, []), (owner, [snapshot["polls"]])):
        text = json.dumps([*poll_frames(ws), *extra])
        assert person.id not in text and "Alice Anonymous" not in text
    for server in room.pair.servers:
        poll_lines = [line for line in server.log().splitlines() if "polls." in line]
        assert poll_lines, "the servers log poll actions"
        assert not [line for line in poll_lines if person.id in line or "Alice Anonymous" in line]
