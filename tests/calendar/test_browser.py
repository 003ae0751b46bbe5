"""The calendar page in Chromium: sign in, connect Google and Outlook at the fakes, create a meeting from
an event, watch it follow the event when it moves.

With `ROOMCAST_SCREENSHOTS=docs/screenshots` it writes the README's calendar screenshot.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.calendar.conftest import CalendarApp
from tests.fakes.google import in_hours
from tests.helpers import register_user
from tests.web.conftest import DESKTOP, PHONE

pytestmark = pytest.mark.browser


async def test_connect_both_providers_and_follow_an_event(
    calendar_app: CalendarApp,
    browser: Browser,
    tmp_path: Path,
) -> None:
    app = calendar_app
    session = await register_user(app.http, display_name="Olive Owner")
    email = session["user"]["email"]
    event_id = app.google.add_event("Design review", in_hours(26), in_hours(27), notify=False)
    app.google.add_event("Team lunch", in_hours(50), in_hours(51), notify=False)
    app.microsoft.add_event("Board meeting", in_hours(30), in_hours(32), notify=False)

    # the Microsoft fake's test CA is not the browser's: only this context ignores it
    context = await browser.new_context(viewport=DESKTOP, ignore_https_errors=True)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on(  # the fakes' own pages (no favicon) are not ours to judge
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and page.url.startswith(app.server.url) else None,
    )
    try:
        await page.goto(f"{app.server.url}/calendar")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill("correct horse battery")
        await page.get_by_role("button", name="Sign in").click()

        await page.get_by_role("button", name="Connect Google Calendar").click()
        await expect(page).to_have_title(re.compile("Google"))
        await page.get_by_role("button", name="Allow").click()
        await expect(page).to_have_url(f"{app.server.url}/calendar")
        await expect(page.get_by_text("Google Calendar connected.")).to_be_visible()
        card = page.locator(".connection-card", has_text="ada@example.com")
        await expect(card.locator(".badge")).to_have_text("Active")
        await expect(card.get_by_text("Design review")).to_be_visible()
        await expect(card.get_by_text("synced just now")).to_be_visible()

        await page.get_by_role("button", name="Connect Outlook").click()
        await expect(page).to_have_title(re.compile("Sign in to your account"))
        await page.get_by_role("button", name="Accept").click()
        await expect(page).to_have_url(f"{app.server.url}/calendar")
        outlook = page.locator(".connection-card", has_text="ada@contoso.example")
        await expect(outlook.get_by_text("Board meeting")).to_be_visible()
        await expect(outlook.locator(".badge")).to_have_text("Active")

        row = card.locator(".event-row", has_text="Design review")
        await row.get_by_role("button", name="Create meeting").click()
        await expect(page.get_by_text("Meeting “Design review” created")).to_be_visible()
        await expect(row.get_by_role("link", name="Open meeting")).to_be_visible()
        [meeting] = await app.sql("SELECT id, starts_at FROM meetings")

        # moved at Google: the page says so, live
        await asyncio.to_thread(app.google.move, event_id, in_hours(28), in_hours(29))
        await expect(page.get_by_text("“Design review” moved to")).to_be_visible(timeout=5000)
        [moved] = await app.sql("SELECT starts_at FROM meetings WHERE id = $1", meeting["id"])
        assert moved["starts_at"] != meeting["starts_at"]

        out = Path(os.environ.get("ROOMCAST_SCREENSHOTS") or tmp_path)
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
        await page.screenshot(path=str(out / "calendar.png"), full_page=True)
        await page.set_viewport_size(PHONE)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width} px)"
        await page.screenshot(path=str(out / "calendar-phone.png"), full_page=True)
        assert not errors, errors
    finally:
        await context.close()
