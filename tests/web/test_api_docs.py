"""The REST API page (`/schema`) works in a room with no internet: Swagger UI comes from this server."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import Route, expect

from tests.web.conftest import OpenTab
from tests.web.test_browser import StartServers

pytestmark = pytest.mark.browser

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


async def test_the_api_docs_render_with_the_outside_network_blocked(
    start_servers: StartServers, open_tab: OpenTab
) -> None:
    (server,) = start_servers(1)
    tab = await open_tab(name="developer")
    page = tab.page
    blocked: list[str] = []

    async def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in LOOPBACK:
            blocked.append(url)
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await page.route("**/*", only_loopback)
    await page.goto(server.url + "/schema")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("roomcast")
    await expect(page.get_by_text("/api/v1/auth/login").first).to_be_visible()
    assert blocked == [], blocked
    tab.assert_no_errors()
