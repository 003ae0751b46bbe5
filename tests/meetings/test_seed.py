"""`roomcast seed`: a demo owner who can log in and a live meeting anyone can join with the printed code."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from server.seed import DEMO_EMAIL, DEMO_PASSWORD, links_base
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


def links(output: str) -> dict[str, str]:
    """The `name: http://...` lines `roomcast seed` prints."""
    found = {}
    for line in output.splitlines():
        name, _, value = line.partition(": ")
        if value.startswith("http"):
            found[name] = value
    return found


async def test_seed_prints_links_to_the_port_serve_uses(start_servers: Any, server_env: dict[str, str]) -> None:
    (server,) = start_servers(1)
    seeded = run_cli("seed", "--port", str(server.port), env=server_env)
    assert seeded.returncode == 0, seeded.stderr
    printed = links(seeded.stdout)
    assert printed["participant page"].startswith(f"{server.url}/m/"), printed
    async with httpx.AsyncClient() as http:
        for url in printed.values():
            response = await http.get(url)
            assert response.status_code == 200 and "<html" in response.text, url

    # ROOMCAST_PUBLIC_URL names the address people use (a proxy, a public name) when no --port is given
    public = run_cli("seed", env={**server_env, "ROOMCAST_PUBLIC_URL": "https://q.example.org"})
    assert links(public.stdout)["presenter page"].startswith("https://q.example.org/present/"), public.stdout


@pytest.mark.parametrize(
    ("host", "port", "base"),
    [
        (None, None, "https://q.example.org"),
        (None, 9000, "http://q.example.org:9000"),
        ("0.0.0.0", 8080, "http://127.0.0.1:8080"),
        ("::", None, "http://[::1]:8000"),
        ("fe80::2", 81, "http://[fe80::2]:81"),
        ("localhost", 81, "http://localhost:81"),
    ],
)
def test_links_base(host: str | None, port: int | None, base: str) -> None:
    assert links_base("https://q.example.org/", host, port) == base
