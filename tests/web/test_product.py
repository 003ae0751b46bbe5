"""The pages as a product (issue 15): an owner runs a meeting in the browser from sign-up to present mode.

One pair of real `roomcast serve` processes serves the whole module (every test makes its own
people and meetings), so the owner's, the presenter's and the participants' pages sit on
different processes and every live update crosses Redis. Access tokens live 65 s here, so the
pages' refresh-ahead-of-expiry (60 s) runs after 5 s and is exercised by every signed-in page.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from tests.helpers import API, PASSWORD, auth_header, live_meeting, register_user, unique_email
from tests.support import DatabaseFactory, ServerProcess, ServiceUrls, delete_prefix, server_environment
from tests.web.conftest import DESKTOP, OpenTab, decode_qr
from tests.web.test_browser import answer, ask, dismiss, item, join_by_link, sign_in

pytestmark = pytest.mark.browser

TOKEN_TTL_S = 65


@pytest.fixture(scope="module")
async def pair(databases: DatabaseFactory, services: ServiceUrls) -> AsyncIterator[list[ServerProcess]]:
    """Two server processes on one database and Redis prefix, for every test of this module."""
    database_url = await databases.create()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    env = server_environment(
        database_url,
        services.redis_url,
        prefix,
        ROOMCAST_ACCESS_TOKEN_TTL_S=str(TOKEN_TTL_S),
        ROOMCAST_ASK_PER_MINUTE="30",
    )
    servers = [ServerProcess(env=env).start() for _ in range(2)]
    try:
        for server in servers:
            await asyncio.to_thread(server.wait_ready)
        yield servers
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
        await databases.drop(database_url)
        await delete_prefix(services.redis_url, prefix)


async def show(presenter: Page, which: str) -> None:
    """Pick one of the presenter's filters: Open, Answered, Dismissed or All."""
    await presenter.get_by_role("group", name="Show").get_by_role("button", name=which).click()


def card(page: Page, title: str) -> Locator:
    """A meeting's card on the home page."""
    return page.locator("#meetings > li").filter(has=page.get_by_role("heading", name=title, exact=True))


async def sign_up(page: Page, server: ServerProcess, name: str, email: str) -> None:
    await page.goto(server.url + "/")
    await page.get_by_role("link", name="Sign in").click()  # from the join form, one click
    await page.get_by_role("link", name="Create an account").click()
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("New password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator("#new-password-error")).to_contain_text("at least 8")  # next to the field
    await expect(page.get_by_label("New password")).to_have_attribute("aria-invalid", "true")
    await page.get_by_label("New password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Your meetings")).to_be_visible()
    await expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()


async def sign_in_home(page: Page, server: ServerProcess, email: str) -> None:
    await page.goto(server.url + "/signin")
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Your meetings")).to_be_visible()


async def test_an_owner_signs_up_runs_a_meeting_and_every_asker_learns_the_outcome(
    pair: list[ServerProcess], open_tab: OpenTab
) -> None:
    one, two = pair
    async with httpx.AsyncClient(base_url=one.url) as http:
        pat = await register_user(http, display_name="Pat Presenter")

    # The owner signs up and creates a pre-moderated meeting with a blocked word; errors sit by their field.
    owner_tab = await open_tab(name="owner")
    owner = owner_tab.page
    owner_email = unique_email("owner")
    await sign_up(owner, one, "Olivia Owner", owner_email)
    await expect(owner.get_by_role("navigation", name="Main").get_by_role("link", name="Account")).to_have_attribute(
        "href", "/account"
    )
    await expect(owner.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar")).to_have_attribute(
        "href", "/calendar"
    )
    await owner.get_by_role("button", name="New meeting").click()
    await owner.get_by_label("Title").fill("All hands")
    await owner.get_by_label("Description").fill("Questions for the leadership team.")
    await owner.get_by_label("Starts").fill("2030-01-15T10:00")
    await owner.get_by_label("Ends").fill("2030-01-15T09:00")
    await owner.get_by_label("Pre-moderation").check()
    await owner.get_by_label("Blocked words").fill("spoiler, Secret")
    await owner.get_by_role("button", name="Create meeting").click()
    await expect(owner.locator("#m-ends-error")).to_have_text("The end is before the start.")
    await owner.get_by_label("Ends").fill("2030-01-15T11:00")
    await owner.get_by_label("Maximum question length").fill("0")
    await owner.get_by_role("button", name="Create meeting").click()
    await expect(owner.locator("#m-max-error")).to_have_text("Must be at least 1.")
    await expect(owner.locator("#m-ends-error")).to_be_hidden()
    await owner.get_by_label("Maximum question length").fill("200")
    await owner.get_by_role("button", name="Create meeting").click()
    await expect(owner.get_by_role("heading", name="Edit “All hands”")).to_be_visible()

    # Presenters by email: an unknown address is refused by the field, Pat is added.
    await owner.get_by_label("Presenter's email").fill("nobody@example.org")
    await owner.get_by_role("button", name="Add presenter").click()
    await expect(owner.locator("#presenter-email-error")).to_have_text("No roomcast account has this email.")
    await owner.get_by_label("Presenter's email").fill(pat["user"]["email"])
    await owner.get_by_role("button", name="Add presenter").click()
    await expect(owner.locator("#presenters")).to_contain_text("Pat Presenter")
    await owner.get_by_role("button", name="Back to meetings").click()

    # Start it: status live.
    meeting_card = card(owner, "All hands")
    await expect(meeting_card).to_contain_text("Scheduled")
    await expect(meeting_card).to_contain_text("Pre-moderated")
    await meeting_card.get_by_role("button", name="Start: All hands").click()
    await expect(meeting_card).to_contain_text("Live")
    code = (await meeting_card.locator(".code").inner_text()).strip()
    meeting_id = await meeting_card.get_attribute("data-id")

    # Pat moderates on the other server; two participants on phones join there and here.
    pat_tab = await open_tab(name="pat")
    presenter = await sign_in(
        pat_tab, two, {"id": meeting_id, "join_code": code, "title": "All hands"}, pat["user"]["email"]
    )
    ann_tab, ben_tab = await open_tab(name="ann", phone=True), await open_tab(name="ben", phone=True)
    ann = await join_by_link(ann_tab, one, code, "Ann", title="All hands")
    ben = await join_by_link(ben_tab, two, code, "Ben", title="All hands")
    await expect(ann.get_by_text("Questions for the leadership team.")).to_be_visible()
    await expect(ann.get_by_text("You are Ann")).to_be_visible()

    roadmap = "When is the new roadmap published?"
    again = "When will the new roadmap be published?"
    parking = "Is parking free on Fridays?"
    secret = "What is the secret launch date?"
    await ask(ann, roadmap)
    await ask(ben, again, anonymous=True)
    await ask(ann, parking)
    await ask(ben, secret, anonymous=True)
    await expect(item(ann, roadmap)).to_contain_text("Awaiting approval")
    await expect(item(presenter, secret, "pending")).to_contain_text("Held by the word filter: Secret")

    # Approve, answer: the asker is told, with the answer.
    await item(presenter, roadmap, "pending").get_by_role("button", name="Approve").click()
    await expect(ann.locator("#meeting-notice")).to_have_text(
        f"Your question “{roadmap}” was approved and is now live."
    )
    await expect(item(ben, roadmap)).to_be_visible()
    await answer(item(presenter, roadmap, "live"), "In March, on the intranet.")
    await expect(ann.locator("#meeting-notice")).to_have_text(
        f"Your question “{roadmap}” was answered: In March, on the intranet."
    )
    # Dismissed with a reason, after it went live.
    await item(presenter, parking, "pending").get_by_role("button", name="Approve").click()
    await expect(item(ben, parking)).to_be_visible()
    await show(presenter, "Open")
    await dismiss(item(presenter, parking, "live"), "Off topic")
    await expect(ann.locator("#meeting-notice")).to_have_text(
        f"A moderator dismissed your question “{parking}”: it is off topic."
    )
    await expect(item(ben, parking)).to_have_count(0)
    # Merged, picked from the similar questions (Ben asked anonymously: he is told all the same).
    duplicate = item(presenter, again, "pending")
    await duplicate.get_by_role("button", name="Merge").click()
    await duplicate.get_by_role("button", name=f"Merge into: {roadmap}").click()
    await expect(ben.locator("#meeting-notice")).to_have_text(
        f"Your question “{again}” was merged into “{roadmap}”; your vote now counts there."
    )
    await dismiss(item(presenter, secret, "pending"), "Inappropriate")
    await expect(ben.locator("#meeting-notice")).to_have_text(
        f"A moderator dismissed your question “{secret}”: it is not appropriate here."
    )
    await ben.get_by_role("button", name="My questions").click()
    await expect(ben.locator("#questions > li")).to_have_count(2)
    await expect(item(ben, again)).to_contain_text(f"Merged into “{roadmap}”")

    # Present mode on a 1920x1080 projector: a QR code of the direct link, the code, the question large.
    await ask(ann, "Can we have the slides?")
    await item(presenter, "slides", "pending").get_by_role("button", name="Approve").click()
    await presenter.set_viewport_size({"width": 1920, "height": 1080})
    await presenter.get_by_role("button", name="Present").click()
    screen = presenter.get_by_role("dialog")
    await expect(screen).to_contain_text(code)
    await expect(presenter.locator("#screen-qr")).to_have_js_property("complete", True)
    join_box = await presenter.locator(".screen-join").screenshot()
    assert decode_qr(join_box) == [f"{two.url}/m/{code}"]
    await expect(presenter.locator("#screen-text")).to_have_text("Can we have the slides?")  # the only live one
    size = float(await presenter.locator("#screen-text").evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert size >= 100, f"a short question fills a projector: {size}px"
    fits = await presenter.locator("#screen-fit").evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    assert fits
    await presenter.keyboard.press("Escape")
    await presenter.set_viewport_size(DESKTOP)

    for tab in (owner_tab, pat_tab, ann_tab, ben_tab):
        tab.assert_no_errors(allow=("422", "404"))  # the refused forms above


async def test_present_mode_steps_through_the_questions_with_the_arrow_keys(
    pair: list[ServerProcess], open_tab: OpenTab
) -> None:
    one, _ = pair
    async with httpx.AsyncClient(base_url=one.url) as http:
        owner = await register_user(http, display_name="Olivia Owner")
        meeting = await live_meeting(http, owner["access_token"], "Town hall")
    presenter_tab = await open_tab(name="presenter")
    presenter = await sign_in(presenter_tab, one, meeting, owner["user"]["email"])
    ann_tab = await open_tab(name="ann")
    ann = await join_by_link(ann_tab, one, meeting["join_code"], "Ann")
    questions = [f"Question number {n}, with a few words to show?" for n in (1, 2, 3)]
    for text in questions:
        await ask(ann, text)
    await item(ann, questions[2]).get_by_role("button", name="Upvote").click()
    await expect(item(presenter, questions[2], "live")).to_contain_text("1 vote")
    await item(presenter, questions[1], "live").get_by_role("button", name="Pin").click()
    await expect(item(presenter, questions[1], "live").get_by_role("button", name="Unpin")).to_be_visible()

    await presenter.get_by_role("button", name="Present").click()
    text = presenter.locator("#screen-text")
    await expect(presenter.locator("#screen-tag")).to_have_text("Pinned question")
    await expect(text).to_have_text(questions[1])
    await expect(presenter.locator("#screen-top > li")).to_have_count(2)
    await expect(presenter.locator("#screen-top > li").first).to_contain_text(questions[2])  # by votes
    await presenter.keyboard.press("ArrowRight")
    await expect(text).to_have_text(questions[2])
    await presenter.keyboard.press("ArrowRight")
    await expect(text).to_have_text(questions[0])
    await expect(presenter.get_by_role("button", name="Next question")).to_be_disabled()
    await presenter.keyboard.press("ArrowLeft")
    await expect(text).to_have_text(questions[2])
    await presenter.get_by_role("button", name="Previous question").click()
    await expect(text).to_have_text(questions[1])
    await expect(presenter.locator("#screen-position")).to_have_text("1 of 3")
    for tab in (presenter_tab, ann_tab):
        tab.assert_no_errors()


async def test_home_page_keys_meetings_refresh_and_revocation(pair: list[ServerProcess], open_tab: OpenTab) -> None:
    one, _ = pair
    async with httpx.AsyncClient(base_url=one.url) as http:
        owner = await register_user(http, display_name="Kim Keys")
        await live_meeting(http, owner["access_token"], "Weekly sync")
    tab = await open_tab(name="owner")
    page = tab.page
    await page.goto(one.url + "/")
    await expect(page.get_by_label("Join code")).to_be_visible()  # not signed in: the join form
    await sign_in_home(page, one, owner["user"]["email"])
    await page.goto(one.url + "/")  # signed in: / is the home page now
    await expect(page.get_by_role("heading", name="Your meetings")).to_be_visible()
    await expect(page.get_by_role("link", name="Join a meeting")).to_have_attribute("href", "/join")

    # An API key: shown once, copyable, works until revoked.
    await page.get_by_label("Key name").fill("CI sync")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_label("New API key")).to_have_value(re.compile(r"^rk_"))
    key = await page.get_by_label("New API key").input_value()
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.get_by_role("button", name="Copy").click()
    await expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == key
    async with httpx.AsyncClient(base_url=one.url) as http:
        assert (await http.get(f"{API}/me", headers=auth_header(key))).status_code == 200
        await page.get_by_role("button", name="Revoke key: CI sync").click()
        await expect(page.locator("#keys")).not_to_contain_text("CI sync")
        assert (await http.get(f"{API}/me", headers=auth_header(key))).status_code == 401
    await page.reload()
    await expect(page.get_by_label("New API key")).to_be_hidden()  # never shown again

    # Edit, end, delete with confirmation.
    weekly = card(page, "Weekly sync")
    await weekly.get_by_role("button", name="Edit: Weekly sync").click()
    await page.get_by_label("Title").fill("Weekly sync (moved)")
    await page.get_by_role("button", name="Save changes").click()
    moved = card(page, "Weekly sync (moved)")
    await expect(moved).to_contain_text("Live")
    await moved.get_by_role("button", name="End: Weekly sync (moved)").click()
    await expect(moved).to_contain_text("Ended")
    await moved.get_by_role("button", name="Delete: Weekly sync (moved)").click()
    await moved.get_by_role("button", name="Keep it").click()
    await expect(moved).to_be_visible()
    await moved.get_by_role("button", name="Delete: Weekly sync (moved)").click()
    await moved.get_by_role("button", name="Yes, delete it").click()
    await expect(moved).to_have_count(0)
    await expect(page.locator("#no-meetings")).to_be_visible()

    # The access token is refreshed ahead of its expiry (65 s here, refreshed 60 s early).
    first = await page.evaluate("JSON.parse(localStorage.getItem('roomcast.session')).access_token")
    await page.wait_for_function(
        "first => JSON.parse(localStorage.getItem('roomcast.session') ?? '{}').access_token !== first",
        arg=first,
        timeout=15_000,
    )
    await page.get_by_role("button", name="New meeting").click()
    await page.get_by_label("Title").fill("After the refresh")
    await page.get_by_role("button", name="Create meeting").click()
    await expect(page.get_by_role("heading", name="Edit “After the refresh”")).to_be_visible()

    # Someone replays this browser's refresh token: the server revokes the login, the page signs out.
    stolen = await page.evaluate("JSON.parse(localStorage.getItem('roomcast.session')).refresh_token")
    async with httpx.AsyncClient(base_url=one.url) as http:
        spent = await http.post(f"{API}/auth/refresh", json={"refresh_token": stolen})
        assert spent.status_code == 200
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=15_000)
    await expect(page.locator("#home-notice")).to_have_text("You were signed out: this login was ended. Sign in again.")
    await page.goto(one.url + "/")
    await expect(page.get_by_label("Join code")).to_be_visible()  # signed out: / is the join form again
    tab.assert_no_errors(allow=("401",))


async def test_presenter_tools_and_live_settings(pair: list[ServerProcess], open_tab: OpenTab) -> None:
    one, two = pair
    async with httpx.AsyncClient(base_url=one.url) as http:
        owner = await register_user(http, display_name="Olivia Owner")
        meeting = await live_meeting(http, owner["access_token"], "Town hall")
    presenter_tab = await open_tab(name="presenter")
    presenter = await sign_in(presenter_tab, one, meeting, owner["user"]["email"])
    await expect(presenter.locator("#pending-column")).to_be_hidden()  # post-moderation: no empty Pending column
    ann_tab = await open_tab(name="ann", phone=True)
    ann = await join_by_link(ann_tab, two, meeting["join_code"], "Ann")

    first, second = "The first question asked?", "The second question asked?"
    await ask(ann, first)
    await ask(ann, second, anonymous=True)
    await item(ann, first).get_by_role("button", name=f"Upvote: {first}").click()
    await expect(item(presenter, first, "live")).to_contain_text("1 vote")
    live = presenter.locator("#live > li")
    await expect(live.first).to_contain_text(first)  # by votes
    await presenter.get_by_role("group", name="Sort by").get_by_role("button", name="Time").click()
    await expect(live.first).to_contain_text(second)  # newest first

    # Answer, edit the answer, reopen; the filters follow.
    await answer(item(presenter, first, "live"), "Yes.")
    await show(presenter, "Answered")
    answered = item(presenter, first, "live")
    await expect(answered).to_contain_text("Answer: Yes.")
    await answered.get_by_role("button", name="Edit answer").click()
    await answered.get_by_label("Answer (optional)").fill("Yes, from Monday.")
    await answered.locator(".panel-answer").get_by_role("button", name="Mark answered").click()
    await expect(item(ann, first)).to_contain_text("Yes, from Monday.")
    await answered.get_by_role("button", name="Reopen").click()
    await expect(presenter.locator("#live > li")).to_have_count(0)
    await show(presenter, "Open")
    await expect(item(presenter, first, "live")).not_to_contain_text("Answered")

    # Mute the anonymous author (never named), unmute; delete a question.
    anonymous = item(presenter, second, "live")
    await expect(anonymous).to_contain_text("Anonymous")
    await anonymous.get_by_role("button", name="More").click()
    await anonymous.get_by_role("button", name="Mute author").click()
    await expect(anonymous).to_contain_text("Author muted")
    await ask_refused(ann, "Am I muted now?", "muted")
    await anonymous.get_by_role("button", name="More").click()
    await anonymous.get_by_role("button", name="Unmute author").click()
    await ask(ann, "Am I back?")
    await expect(item(presenter, "Am I back?", "live")).to_be_visible()
    back = item(presenter, "Am I back?", "live")
    await back.get_by_role("button", name="More").click()
    await back.get_by_role("button", name="Delete").click()
    await back.get_by_role("button", name="Yes, delete").click()
    await expect(item(ann, "Am I back?")).to_have_count(0)
    await expect(item(presenter, "Am I back?", "live")).to_have_count(0)

    # Dismissed ones under their filter, with their reason; reopened from there.
    await dismiss(item(presenter, second, "live"), "Duplicate")
    await show(presenter, "Dismissed")
    await expect(item(presenter, second, "live")).to_contain_text("Dismissed: Duplicate")
    await item(presenter, second, "live").get_by_role("button", name="Reopen").click()
    await expect(item(ann, second)).to_be_visible()

    # Settings live: pre-moderation and a blocked word, for the next questions.
    await presenter.get_by_role("button", name="Settings").click()
    await presenter.get_by_label("Pre-moderation").check()
    await presenter.get_by_label("Blocked words").fill("x" * 51)
    await presenter.get_by_role("button", name="Save settings").click()
    await expect(presenter.locator("#set-blocked-error")).to_have_text("Must be at most 50 characters.")
    await presenter.get_by_label("Blocked words").fill("lottery")
    await presenter.get_by_role("button", name="Save settings").click()
    await expect(presenter.locator("#moderation-mode")).to_contain_text("Pre-moderation")
    await expect(presenter.locator("#pending-column")).to_be_visible()
    await ask(ann, "Will there be a lottery?")
    await expect(item(ann, "lottery")).to_contain_text("Awaiting approval")
    await expect(item(presenter, "lottery", "pending")).to_contain_text("Held by the word filter: lottery")
    for tab in (presenter_tab, ann_tab):
        tab.assert_no_errors(allow=("422",))


async def ask_refused(page: Page, text: str, words: str) -> None:
    await page.get_by_label("Your question").fill(text)
    await page.get_by_role("button", name="Ask", exact=True).click()
    await expect(page.locator("#ask-error")).to_contain_text(words)


async def test_participant_sorts_edits_deletes_and_keeps_votes(pair: list[ServerProcess], open_tab: OpenTab) -> None:
    _, two = pair
    async with httpx.AsyncClient(base_url=two.url) as http:
        owner = await register_user(http, display_name="Olivia Owner")
        meeting: dict[str, Any] = await live_meeting(http, owner["access_token"], "Town hall")
    ann_tab, ben_tab = await open_tab(name="ann", phone=True), await open_tab(name="ben")
    ann = await join_by_link(ann_tab, two, meeting["join_code"], "Ann")
    ben = await join_by_link(ben_tab, two, meeting["join_code"], "Ben")
    older, newer = "An older question?", "A newer question?"
    await ask(ben, older)
    await ask(ben, newer)
    upvote = item(ann, older).get_by_role("button", name=f"Upvote: {older}")
    await upvote.click()
    await expect(upvote).to_have_attribute("aria-pressed", "true")
    await expect(ann.locator("#questions > li").first).to_contain_text(older)  # popular
    await ann.get_by_role("button", name="Recent").click()
    await expect(ann.locator("#questions > li").first).to_contain_text(newer)

    # Ann asks: her question is scrolled into view; she edits it, then deletes it.
    for n in range(6):
        await ask(ben, f"Filler question {n} to make the list long on a phone?")
    await ann.get_by_role("button", name="Popular").click()
    await ask(ann, "My own question, with a typo?")
    mine = item(ann, "My own question")
    await expect(mine).to_be_in_viewport()
    await mine.get_by_role("button", name="Edit: My own question, with a typo?").click()
    await mine.get_by_label("New wording").fill("My own question, without a typo?")
    await mine.get_by_role("button", name="Save").click()
    await expect(item(ben, "without a typo")).to_be_visible()
    await ann.get_by_role("button", name="My questions").click()
    await expect(ann.locator("#questions > li")).to_have_count(1)
    await mine.get_by_role("button", name="Delete: My own question, without a typo?").click()
    await mine.get_by_role("button", name="Yes, delete").click()
    await expect(item(ben, "without a typo")).to_have_count(0)
    await expect(ann.locator("#no-questions")).to_have_text("You have not asked anything yet.")

    # Upvotes survive a reload, from the snapshot's `mine` (this tab's memory is cleared first).
    await ann.evaluate(
        "sessionStorage.removeItem(Object.keys(sessionStorage).find((k) => k.startsWith('roomcast.votes.')))"
    )
    await ann.reload()
    await expect(item(ann, older).get_by_role("button", name=f"Upvote: {older}")).to_have_attribute(
        "aria-pressed", "true"
    )
    for tab in (ann_tab, ben_tab):
        tab.assert_no_errors()
