"""A poll run from the presenter page to two participant pages (on two servers) and present mode, in Chromium.

With `ROOMCAST_SCREENSHOTS=docs/screenshots` it also writes the README's poll screenshots.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.web.conftest import DESKTOP, PHONE, OpenTab
from tests.web.test_browser import StartServers, ask, item, join_by_link, owner_and_meeting, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("ROOMCAST_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def poll_item(page: Page, title: str) -> object:
    return page.locator("#polls-panel .poll-item").filter(has_text=title)


async def create_poll(page: Page, kind: str, title: str, options: list[str] | None = None, **extra: object) -> None:
    await page.get_by_role("button", name="New poll").click()
    editor = page.get_by_role("form", name="New poll")
    await editor.get_by_label("Kind").select_option(label=kind)
    await editor.get_by_label("Question").fill(title)
    if options:
        await editor.get_by_label("Options, one per line (2 to 12)").fill("\n".join(options))
    if extra.get("multiple"):
        await editor.get_by_label("Several answers allowed").check()
    await editor.get_by_role("button", name="Create poll").click()
    await expect(page.get_by_role("form", name="New poll")).to_be_hidden()
    await expect(poll_item(page, title)).to_contain_text("Draft")  # type: ignore[attr-defined]


async def test_a_poll_from_the_presenter_to_two_participants_and_present_mode(
    start_servers: StartServers, open_tab: OpenTab, out: Path
) -> None:
    one, two = start_servers(2)
    owner, meeting = await owner_and_meeting(one)
    presenter_tab = await open_tab(name="presenter")
    ann_tab = await open_tab(name="ann")
    ben_tab = await open_tab(name="ben", phone=True)
    presenter = await sign_in(presenter_tab, one, meeting, owner["user"]["email"])
    ann = await join_by_link(ann_tab, one, meeting["join_code"], "Ann Lee")
    ben = await join_by_link(ben_tab, two, meeting["join_code"], "Ben Okafor")

    # The presenter prepares one poll of each kind, and puts the rating first.
    await create_poll(presenter, "Multiple choice", "Which session next?", ["Roadmap", "Live demo", "Q&A only"])
    await create_poll(presenter, "Rating", "How useful was this talk?")
    await create_poll(presenter, "Word cloud", "One word for this quarter")
    rating = poll_item(presenter, "How useful")
    await rating.get_by_role("button", name="Move up").click()  # type: ignore[attr-defined]
    await expect(presenter.locator("#polls-panel .poll-item").first).to_contain_text("How useful")
    await expect(ann.locator("#poll-card")).to_be_hidden()  # drafts stay with the presenters

    # Opening it: both participants see it, announced to screen readers, with radio buttons.
    choice = poll_item(presenter, "Which session next?")
    await choice.get_by_role("button", name="Open").click()  # type: ignore[attr-defined]
    for page in (ann, ben):
        await expect(page.get_by_role("heading", name="Which session next?")).to_be_visible()
        await expect(page.locator("#announcer")).to_have_text("New poll: Which session next?")
    await ann.get_by_role("radio", name="Live demo").check()
    await ann.get_by_role("button", name="Send answer").click()
    await expect(ann.locator("#poll-card .poll-status")).to_contain_text("answer is in")
    # Ben answers by keyboard alone
    await ben.get_by_role("radio", name="Roadmap").focus()
    await ben.keyboard.press("ArrowDown")
    await expect(ben.get_by_role("radio", name="Live demo")).to_be_checked()
    await ben.keyboard.press("ArrowDown")
    await ben.keyboard.press("Tab")
    await ben.keyboard.press("Enter")
    await expect(ben.locator("#poll-card .poll-status")).to_contain_text("answer is in")

    await expect(choice.locator(".poll-bar").filter(has_text="Live demo")).to_contain_text("1 · 50%")  # type: ignore[attr-defined]
    await expect(choice.locator(".poll-bar").filter(has_text="Q&A only")).to_contain_text("1 · 50%")  # type: ignore[attr-defined]
    await expect(ann.locator("#poll-card .poll-bar").filter(has_text="Live demo")).to_contain_text("1 · 50%")

    # A reload keeps the answer pressed (the snapshot's `mine`).
    await ann.reload()
    await expect(ann.get_by_role("radio", name="Live demo")).to_be_checked()
    await expect(ann.get_by_role("button", name="Change answer")).to_be_visible()

    # Reactions float up on every screen; calmly (a fading tally, nothing moving) under reduced motion.
    await ann.emulate_media(reduced_motion="reduce")
    await ben.get_by_role("button", name="Clap").click()
    await ben.get_by_role("button", name="Love").click()
    for page in (ben, presenter):
        await expect(page.locator(".reaction-float").first).to_be_attached(timeout=5000)
    await expect(ann.locator(".reaction-tally")).to_contain_text("👏", timeout=5000)
    assert await ann.locator(".reaction-float").count() == 0

    # Present mode: the open poll's live results beside the pinned question.
    await ask(ben, "Will the demo be recorded?")
    await item(presenter, "recorded", "live").get_by_role("button", name="Pin").click()
    await presenter.get_by_role("button", name="Present").click()
    screen = presenter.get_by_role("dialog")
    await expect(screen.locator("#screen-poll")).to_contain_text("Which session next?")
    await expect(screen.locator("#screen-poll")).to_contain_text("2 answers")
    await expect(screen).to_contain_text("Will the demo be recorded?")
    await presenter.screenshot(path=str(out / "present-mode-poll.png"))
    await presenter.get_by_role("button", name="Exit presentation").click()

    await ben.mouse.move(0, 0)
    await ben.screenshot(path=str(out / "participant-poll-phone.png"), full_page=True)

    # The word cloud replaces it (opening one closes the other); Ben answers, Ann sees the cloud.
    cloud = poll_item(presenter, "One word")
    await cloud.get_by_role("button", name="Open").click()  # type: ignore[attr-defined]
    await expect(choice.locator(".poll-state")).to_have_text("Closed")  # type: ignore[attr-defined]
    await ben.get_by_label("A word or a short phrase").fill("Growth")
    await ben.get_by_role("button", name="Send answer").click()
    await ann.get_by_label("A word or a short phrase").fill("growth ")
    await ann.get_by_label("Word 2 (optional)").fill("Focus")
    await ann.get_by_role("button", name="Send answer").click()
    await expect(ann.locator("#poll-card .word-cloud")).to_contain_text("Growth")
    await expect(cloud.locator(".poll-respondents")).to_have_text("2 answers")  # type: ignore[attr-defined]

    # The rating, by keyboard: the scale's radio buttons, then the histogram and the average.
    await poll_item(presenter, "How useful").get_by_role("button", name="Open").click()  # type: ignore[attr-defined]
    await ann.get_by_role("radio", name="4").check()
    await ann.get_by_role("button", name="Send answer").click()
    await ben.get_by_role("radio", name="2").focus()
    await ben.keyboard.press("Space")
    await ben.get_by_role("button", name="Send answer").click()
    await expect(poll_item(presenter, "How useful").locator(".poll-average")).to_contain_text("3.0")  # type: ignore[attr-defined]
    await expect(ann.locator("#poll-card .poll-average")).to_contain_text("3.0 average out of 5")
    await poll_item(presenter, "How useful").get_by_role("button", name="Close").click()  # type: ignore[attr-defined]
    await expect(ann.locator("#poll-card")).to_have_attribute("data-status", "closed")

    await presenter.set_viewport_size(DESKTOP)
    await presenter.mouse.move(0, 0)
    await presenter.screenshot(path=str(out / "presenter-polls.png"), full_page=True)

    # The export: one row per answer (2 choice + 2 words + 2 ratings).
    async with presenter.expect_download() as download:
        await presenter.get_by_role("button", name="Download answers (CSV)").click()
    rows = (await (await download.value).path()).read_text(encoding="utf-8").strip().splitlines()
    assert rows[0] == "poll_id,poll,kind,answer,respondent,answered_at" and len(rows) == 7, rows
    await ben.set_viewport_size(PHONE)
    for tab in (presenter_tab, ann_tab, ben_tab):
        tab.assert_no_errors()
