"""The CSV export: every question, anonymous authors blank, formula cells neutralised, owner and presenter only."""

from __future__ import annotations

import csv
import io

import httpx

from tests.qa.conftest import Room, ask, moderate


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_export_content_and_escaping(room: Room) -> None:
    _, alice = await room.participant("Alice")
    _, bob = await room.participant("=HYPERLINK(evil)")
    moderator = await room.moderator()
    plain = (await alice.request(ask(room.public, 'Plain, with a comma and "quotes"')))["data"]["question"]
    formula = (await bob.request(ask(room.public, "=cmd|' /C calc'!A0")))["data"]["question"]
    anonymous = (await alice.request(ask(room.public, "@secret", anonymous=True)))["data"]["question"]
    await moderator.request(moderate(room.moderation, plain["id"], "answer", text="+1 yes"))
    await bob.request({"type": "vote", "room": room.public, "question_id": anonymous["id"], "up": True})

    url = f"/api/v1/meetings/{room.meeting_id}/questions.csv"
    async with httpx.AsyncClient(base_url=room.pair.servers[1].url) as http:
        response = await http.get(url, headers=bearer(room.presenter.token))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
        by_id = {row["id"]: row for row in rows}
        assert list(rows[0]) == [
            "id",
            "status",
            "pinned",
            "votes",
            "author",
            "anonymous",
            "text",
            "answer",
            "created_at",
            "answered_at",
        ]
        assert len(rows) == 3
        assert by_id[plain["id"]]["text"] == 'Plain, with a comma and "quotes"'
        assert by_id[plain["id"]]["status"] == "answered"
        assert by_id[plain["id"]]["answer"] == "'+1 yes"
        assert by_id[plain["id"]]["answered_at"].endswith("Z")
        assert by_id[plain["id"]]["author"] == "Alice"
        assert by_id[formula["id"]]["text"] == "'=cmd|' /C calc'!A0"
        assert by_id[formula["id"]]["author"] == "'=HYPERLINK(evil)"
        assert by_id[anonymous["id"]]["author"] == ""
        assert by_id[anonymous["id"]]["text"] == "'@secret"
        assert by_id[anonymous["id"]]["votes"] == "1"

        as_owner = await http.get(url, headers=bearer(room.owner.token))
        assert as_owner.status_code == 200

        participant = await room.pair.world.participant(room.meeting_id, await room.pair.world.user("Pia"))
        refused = await http.get(url, headers=bearer(participant.token))
        assert refused.status_code == 403

        stranger = await room.pair.world.user("Stranger")
        hidden = await http.get(url, headers=bearer(stranger.token))
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "not_found"
        nobody = await http.get(url)
        assert nobody.status_code == 401
