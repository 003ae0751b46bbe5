"""The pages and their assets are served (no browser needed): right types, no external origins."""

from __future__ import annotations

import re

import pytest
from litestar.testing import AsyncTestClient

from server.web.routes import PAGES

ASSETS = sorted(p.name for p in (PAGES / "static").iterdir())


@pytest.mark.parametrize(
    ("path", "labels"),
    [
        ("/", ["Join code", "Your name", "Join", "Your question", "Ask"]),
        ("/m/ABCD2345", ["Join code", "Your name", "Join"]),
        ("/present/5a8f3a4e-8f5e-4f5e-9d5e-0123456789ab", ["Email", "Password", "Sign in", "Download CSV"]),
        ("/present/not-a-uuid", ["Email", "Password", "Sign in"]),
    ],
)
async def test_pages_are_served(client: AsyncTestClient, path: str, labels: list[str]) -> None:  # type: ignore[type-arg]
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for label in labels:
        assert f">{label}<" in response.text, label


async def test_assets_are_served_with_module_friendly_types(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    types = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in ASSETS:
        response = await client.get(f"/static/{name}")
        assert response.status_code == 200, name
        suffix = name[name.rindex(".") :]
        assert types[suffix] in response.headers["content-type"], (name, response.headers["content-type"])
    assert (await client.get("/static/../routes.py")).status_code == 404


def test_nothing_is_loaded_from_another_origin() -> None:
    """No CDNs or web fonts: meeting rooms often have no internet."""
    for path in [PAGES / "participant.html", PAGES / "presenter.html", *(PAGES / "static").iterdir()]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert "@import" not in text and "url(http" not in text, path


@pytest.mark.parametrize("page", ["participant.html", "presenter.html"])
def test_audience_pages_carry_no_developer_links(page: str) -> None:
    text = (PAGES / page).read_text(encoding="utf-8")
    for developer_link in ("/schema", "/asyncapi.json", "/static/roomcast.js"):
        assert f'href="{developer_link}"' not in text, (page, developer_link)
