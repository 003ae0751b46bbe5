"""Both pages, filled with a realistic meeting, at desktop (1280x800) and phone (390x844) width.

Checks that nothing overflows sideways on a phone and that the pages stay free of console
errors. With `ROOMCAST_SCREENSHOTS=docs/screenshots` it also writes the README's screenshots:

    ROOMCAST_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest tests/web/test_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.helpers import create_meeting, patch_meeting
from tests.web.conftest import DESKTOP, PHONE, OpenTab
from tests.web.test_browser import StartServers, answer, ask, item, join_by_link, owner_and_meeting, sign_in

pytestmark = pytest.mark.browser


async def still(page: Page) -> None:
    """Top of the page, no hover: how a person first sees it."""
    await page.mouse.move(0, 0)
    await page.evaluate("window.scrollTo(0, 0)")


async def fits_sideways(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = await page.evaluate("window.innerWidth")
    assert width <= viewport, f"{page.url} is {width}px wide in a {viewport}px viewport"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the screenshots go: `ROOMCAST_SCREENSHOTS` when set, else this test's temporary directory."""
    directory = Path(os.environ.get("ROOMCAST_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def test_pages_at_desktop_and_phone_width(start_servers: StartServers, open_tab: OpenTab, out: Path) -> None:
    one, two = start_servers(2, ROOMCAST_ASK_PER_MINUTE="30")
    owner, meeting = await owner_and_meeting(one, blocked_words=["spoiler"])
    async with httpx.AsyncClient(base_url=one.url) as http:
        token = owner["access_token"]
        await patch_meeting(http, token, meeting["id"], description="Ask the product team anything.")
        await create_meeting(
            http, token, "Quarterly review", starts_at="2030-03-02T14:00:00Z", ends_at="2030-03-02T15:30:00Z"
        )
    presenter_tab = await open_tab(name="presenter")
    ann_tab = await open_tab(name="ann")
    ben_tab = await open_tab(name="ben", phone=True)

    # An empty meeting on a phone first, then a busy one.
    ben = await join_by_link(ben_tab, two, meeting["join_code"], "Ben Okafor")
    await fits_sideways(ben)
    presenter = await sign_in(presenter_tab, one, meeting, owner["user"]["email"])
    ann = await join_by_link(ann_tab, one, meeting["join_code"], "Ann Lee")

    await ask(ann, "Will the slides and the recording be shared after the session?")
    await ask(ben, "How does the new release handle offline meeting rooms?", anonymous=True)
    await ask(ann, "What is on the roadmap for the second half of the year?")
    await ask(ben, "Can presenters export the questions to a spreadsheet?")
    await ask(ann, "No spoiler please: who wins the hackathon?")
    for text in ("offline meeting rooms", "roadmap"):
        await item(ann, text).get_by_role("button", name="Upvote").click()
    await item(ben, "offline meeting rooms").get_by_role("button", name="Upvote").click()
    await expect(item(presenter, "offline meeting rooms", "live")).to_contain_text("2 votes")
    await item(presenter, "roadmap", "live").get_by_role("button", name="Pin").click()
    answered = item(presenter, "spreadsheet", "live")
    await answer(answered, "Yes: Download CSV on the presenter page.")
    await expect(item(ann, "spreadsheet")).to_contain_text("Answered")
    await expect(item(ann, "hackathon")).to_contain_text("Awaiting approval")
    await expect(item(presenter, "hackathon", "pending")).to_contain_text("spoiler")
    await ann.get_by_label("Your question").fill("Is there a")
    await ann.evaluate("document.activeElement.blur()")

    shots = [
        (ann, DESKTOP, "participant-desktop.png"),
        (ben, PHONE, "participant-phone.png"),
        (presenter, DESKTOP, "presenter-desktop.png"),
    ]
    for page, _, name in shots:
        await fits_sideways(page)
        await still(page)
        await page.screenshot(path=str(out / name), full_page=True)

    # The presenter page on a phone, then present mode on the room's screen.
    await presenter.set_viewport_size(PHONE)
    await fits_sideways(presenter)
    await still(presenter)
    await presenter.screenshot(path=str(out / "presenter-phone.png"), full_page=True)
    await presenter.set_viewport_size({"width": 1920, "height": 1080})  # a projector
    await presenter.get_by_role("button", name="Present").click()
    await expect(presenter.get_by_role("dialog")).to_contain_text("Pinned question")
    await expect(presenter.locator("#screen-qr")).to_have_js_property("complete", True)
    await presenter.screenshot(path=str(out / "present-mode.png"))
    await presenter.keyboard.press("Escape")

    # The owner's home page, and the form for a new meeting.
    await presenter.set_viewport_size(DESKTOP)
    await presenter.goto(one.url + "/")
    await expect(presenter.get_by_role("heading", name="Quarterly review")).to_be_visible()
    await fits_sideways(presenter)
    await still(presenter)
    await presenter.screenshot(path=str(out / "home-desktop.png"), full_page=True)
    await presenter.get_by_role("button", name="New meeting").click()
    await presenter.get_by_label("Title").fill("Engineering all hands")
    await presenter.get_by_label("Description").fill("Monthly update from the engineering leads.")
    await presenter.get_by_label("Pre-moderation").check()
    await presenter.get_by_label("Blocked words").fill("spoiler, salary")
    await still(presenter)
    await presenter.screenshot(path=str(out / "meeting-form.png"), full_page=True)

    # The join page on a phone.
    join_tab = await open_tab(one.url + "/", name="join", phone=True)
    await fits_sideways(join_tab.page)
    await join_tab.page.screenshot(path=str(out / "join-phone.png"))

    for tab in (presenter_tab, ann_tab, ben_tab, join_tab):
        tab.assert_no_errors()
