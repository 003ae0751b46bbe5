"""Playwright fixtures for the browser tests: Debian's Chromium, one context per simulated person.

Every tab records its console errors and uncaught page errors; `Tab.assert_no_errors()` is how a
test says "no JavaScript errors". Contexts are separate, so each tab has its own sessionStorage
(one guest token, one presenter session) like separate people on separate devices.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, async_playwright

CHROMIUM = os.environ.get("ROOMCAST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_FOUND = Path(CHROMIUM).exists()
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Tab:
    """One person's browser tab, with every console error and uncaught exception it produced."""

    page: Page
    name: str
    errors: list[str] = field(default_factory=list)

    def assert_no_errors(self, *, allow: tuple[str, ...] = ()) -> None:
        unexpected = [e for e in self.errors if not any(a in e for a in allow)]
        assert not unexpected, f"{self.name}: console errors: {unexpected}"


OpenTab = Callable[..., Awaitable[Tab]]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture
async def open_tab(browser: Browser) -> AsyncIterator[OpenTab]:
    """`await open_tab(url, name="ann", phone=False)`: a fresh context and page at `url`."""
    contexts: list[BrowserContext] = []

    async def open_(url: str | None = None, *, name: str = "tab", phone: bool = False) -> Tab:
        context = await browser.new_context(
            viewport=PHONE if phone else DESKTOP,
            device_scale_factor=1,
            is_mobile=phone,
            has_touch=phone,
            accept_downloads=True,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = await context.new_page()
        tab = Tab(page, name)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                tab.errors.append(f"{message.text} @ {message.location.get('url', '')}")

        def on_page_error(error: Error) -> None:
            tab.errors.append(f"uncaught: {error.message}")

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        if url is not None:
            await page.goto(url)
        return tab

    yield open_
    for context in contexts:
        await context.close()
