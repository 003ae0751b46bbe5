"""`roomcast seed`: a demo owner who can log in and a live meeting anyone can join with the printed code."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from server.seed import DEMO_EMAIL, DEMO_PASSWORD
from tests.helpers import API, auth_header, join_as_guest, login
from tests.support import run_cli


async def test_seed_prints_a_working_join_code_and_login(
    client: AsyncTestClient,  # type: ignore[type-arg]
    server_env: dict[str, str],
) -> None:
    first = run_cli("seed", env=server_env)
    assert first.returncode == 0, first.stderr
    assert f"owner login: {DEMO_EMAIL} / {DEMO_PASSWORD}" in first.stdout
    code = first.stdout.split("join code: ")[1].split()[0]
    again = run_cli("seed", env=server_env)
    assert again.returncode == 0, again.stderr
    assert f"join code: {code}" in again.stdout  # re-running reuses the demo data

    owner = await login(client, DEMO_EMAIL, DEMO_PASSWORD)
    meetings = (await client.get(f"{API}/meetings", headers=auth_header(owner["access_token"]))).json()["items"]
    assert [(m["join_code"], m["status"]) for m in meetings] == [(code, "live")]
    assert (await join_as_guest(client, code, "Visitor"))["meeting_id"] == meetings[0]["id"]

    export = await client.get(
        f"{API}/meetings/{meetings[0]['id']}/questions.csv", headers=auth_header(owner["access_token"])
    )
    lines = export.text.strip().splitlines()
    assert len(lines) == 1 + 3, "three demo questions, seeded once however often seed runs"
    assert "What is on the roadmap for next quarter?" in export.text
