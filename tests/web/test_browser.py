"""The participant and presenter pages in headless Chromium, against two real server processes.

Two participants sit on different server processes and a presenter moderates, so every live
update a page shows has crossed Redis fan-out. Each test ends by checking that no page logged a
JavaScript error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from tests.helpers import PASSWORD, live_meeting, register_user
from tests.support import ServerProcess
from tests.web.conftest import OpenTab, Tab

pytestmark = pytest.mark.browser

StartServers = Callable[..., list[ServerProcess]]


async def owner_and_meeting(server: ServerProcess, **settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A registered owner (Session) and their live meeting (Meeting), made over REST."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        owner = await register_user(http, display_name="Olivia Owner")
        meeting = await live_meeting(http, owner["access_token"], "Town hall", settings=settings)
    return owner, meeting


async def join_from_home(tab: Tab, server: ServerProcess, code: str, name: str) -> Page:
    page = tab.page
    await page.goto(server.url + "/")
    await page.get_by_label("Join code").fill(code.lower())  # people type codes in lower case too
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("heading", name="Town hall")).to_be_visible()
    await expect(page).to_have_url(f"{server.url}/m/{code}")
    return page


async def join_by_link(tab: Tab, server: ServerProcess, code: str, name: str, *, title: str = "Town hall") -> Page:
    page = tab.page
    await page.goto(f"{server.url}/m/{code}")
    await expect(page.get_by_label("Your name")).to_be_visible()
    await expect(page.get_by_label("Join code")).to_be_hidden()
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("heading", name=title)).to_be_visible()
    return page


async def sign_in(tab: Tab, server: ServerProcess, meeting: dict[str, Any], email: str) -> Page:
    page = tab.page
    await page.goto(f"{server.url}/present/{meeting['id']}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name=meeting.get("title", "Town hall"))).to_be_visible()
    await expect(page.locator("#join-code")).to_have_text(meeting["join_code"])
    await expect(page.get_by_role("link", name=f"/m/{meeting['join_code']}")).to_be_visible()
    return page


def item(page: Page, text: str, list_id: str = "questions") -> Locator:
    """The `<li>` of the question with `text` in the list `#list_id`."""
    return page.locator(f"#{list_id}").get_by_role("listitem").filter(has_text=text)


async def answer(card: Locator, text: str) -> None:
    """The presenter writes an answer (the box opens on demand) and marks the question answered."""
    await card.get_by_role("button", name="Write answer").click()
    await card.get_by_label("Answer (optional)").fill(text)
    await card.locator(".panel-answer").get_by_role("button", name="Mark answered").click()


async def dismiss(card: Locator, reason: str | None = None) -> None:
    """The presenter dismisses a question, with a reason ("Off topic") or the form's first one."""
    await card.locator(".act-dismiss").click()
    if reason:
        await card.get_by_label("Reason").select_option(label=reason)
    await card.get_by_role("button", name="Dismiss question").click()


async def ask(page: Page, text: str, *, anonymous: bool = False) -> None:
    await page.get_by_label("Your question").fill(text)
    checkbox = page.get_by_label("Ask anonymously")
    if anonymous or await checkbox.is_visible():
        await checkbox.set_checked(anonymous)  # the box stays as the asker left it
    await page.get_by_role("button", name="Ask", exact=True).click()
    await expect(page.get_by_label("Your question")).to_have_value("")


async def test_post_moderation_two_servers_ask_vote_pin_answer_dismiss(
    start_servers: StartServers, open_tab: OpenTab
) -> None:
    one, two = start_servers(2)
    owner, meeting = await owner_and_meeting(one)
    code = meeting["join_code"]
    presenter_tab, ann_tab, ben_tab = (
        await open_tab(name="presenter"),
        await open_tab(name="ann"),
        await open_tab(name="ben", phone=True),
    )
    presenter = await sign_in(presenter_tab, one, meeting, owner["user"]["email"])
    ann = await join_from_home(ann_tab, one, code, "Ann")
    ben = await join_by_link(ben_tab, two, code, "Ben")
    for page in (presenter, ann, ben):  # presence is counted across both processes
        await expect(page.locator("#presence")).to_have_text("3 people here", timeout=8000)

    # Ann asks (server one); Ben (server two) and the presenter see it live.
    await expect(ann.get_by_text("0 / 300")).to_be_visible()
    await ask(ann, "What is the roadmap for next year?")
    await expect(item(ben, "roadmap")).to_contain_text("Ann")
    await expect(item(ben, "roadmap")).to_contain_text("0 votes")
    await expect(item(presenter, "roadmap", "live")).to_be_visible()
    await expect(item(ann, "roadmap")).to_contain_text("Ann (you)")

    # Ben asks anonymously; everyone sees "Anonymous", Ann gets a live-region announcement.
    await ask(ben, "Will the office move?", anonymous=True)
    await expect(item(ann, "office move")).to_contain_text("Anonymous")
    await expect(item(presenter, "office move", "live")).to_contain_text("Anonymous")
    await expect(ann.locator("[aria-live=polite]#announcer")).to_contain_text("Will the office move?")

    # Votes: pressed state, counts across servers, withdraw, and the order follows votes.
    upvote = item(ben, "roadmap").get_by_role("button", name="Upvote")
    await upvote.click()
    await expect(upvote).to_have_attribute("aria-pressed", "true")
    await expect(item(ann, "roadmap")).to_contain_text("1 vote")
    await upvote.click()
    await expect(upvote).to_have_attribute("aria-pressed", "false")
    await expect(item(ann, "roadmap")).to_contain_text("0 votes")
    await item(ann, "office move").get_by_role("button", name="Upvote").click()
    await expect(item(ben, "office move")).to_contain_text("1 vote")
    await expect(ben.locator("#questions > li").first).to_contain_text("Will the office move?")
    await expect(presenter.locator("#live > li").first).to_contain_text("Will the office move?")

    # The presenter pins Ann's question: it goes on top everywhere, marked "Pinned".
    await item(presenter, "roadmap", "live").get_by_role("button", name="Pin").click()
    await expect(item(presenter, "roadmap", "live").get_by_role("button", name="Unpin")).to_be_visible()
    await expect(ben.locator("#questions > li").first).to_contain_text("roadmap")
    await expect(item(ben, "roadmap")).to_contain_text("Pinned")

    # Answered, with an answer text.
    presenter_item = item(presenter, "roadmap", "live")
    await answer(presenter_item, "We publish it in March.")
    await expect(item(ben, "roadmap")).to_contain_text("Answered")
    await expect(item(ben, "roadmap")).to_contain_text("We publish it in March.")
    await expect(item(ann, "roadmap")).to_contain_text("We publish it in March.")
    await expect(ann.locator("#meeting-notice")).to_contain_text("was answered: We publish it in March.")

    # Dismissed: gone for the participants, kept under "Dismissed" for the presenter.
    await dismiss(item(presenter, "office move", "live"))
    await expect(item(ann, "office move")).to_have_count(0)
    await expect(item(ben, "office move")).to_have_count(0)
    await expect(presenter.locator("#dismissed-count")).to_have_text("1")

    # Too long: the counter says so and the error is in words next to the box.
    await ann.get_by_label("Your question").fill("x" * 301)
    await expect(ann.locator("#counter")).to_contain_text("301 / 300")
    await ann.get_by_role("button", name="Ask", exact=True).click()
    await expect(ann.locator("#ask-error")).to_contain_text("too long")

    # A reload keeps the guest (token in sessionStorage) and the pressed state.
    await item(ben, "roadmap").get_by_role("button", name="Upvote").click()
    await expect(item(ben, "roadmap").get_by_role("button", name="Upvote")).to_have_attribute("aria-pressed", "true")
    await ben.reload()
    await expect(ben.get_by_role("heading", name="Town hall")).to_be_visible()
    await expect(item(ben, "roadmap").get_by_role("button", name="Upvote")).to_have_attribute("aria-pressed", "true")

    for tab in (presenter_tab, ann_tab, ben_tab):
        tab.assert_no_errors()


async def test_pre_moderation_approval_dismissal_and_limits(start_servers: StartServers, open_tab: OpenTab) -> None:
    one, two = start_servers(2, ROOMCAST_ASK_PER_MINUTE="3")
    owner, meeting = await owner_and_meeting(one, moderation="pre", anonymous_questions=False, max_question_length=120)
    presenter_tab, ann_tab, ben_tab = (
        await open_tab(name="presenter"),
        await open_tab(name="ann", phone=True),
        await open_tab(name="ben"),
    )
    presenter = await sign_in(presenter_tab, two, meeting, owner["user"]["email"])
    ann = await join_by_link(ann_tab, one, meeting["join_code"], "Ann")
    ben = await join_from_home(ben_tab, two, meeting["join_code"], "Ben")
    await expect(presenter.locator("#moderation-mode")).to_contain_text("Pre-moderation")

    # The meeting refuses anonymous questions: no checkbox. Its limit is 120 characters.
    await expect(ann.get_by_label("Ask anonymously")).to_be_hidden()
    await expect(ann.locator("#counter")).to_contain_text("0 / 120")

    # Held for approval: the asker sees it as such, the room does not see it at all.
    await ask(ann, "Can we get the slides?")
    mine = item(ann, "slides")
    await expect(mine).to_contain_text("Awaiting approval")
    await expect(mine.get_by_role("button", name="Upvote")).to_be_disabled()
    await expect(ann.get_by_text("awaiting approval by a moderator")).to_be_visible()
    pending = item(presenter, "slides", "pending")
    await expect(pending.get_by_role("button", name="Approve")).to_be_visible()
    await expect(pending.get_by_role("button", name="Dismiss")).to_be_visible()  # "Dismiss…"
    await expect(presenter.locator("#pending-count")).to_have_text("1")
    await expect(item(ben, "slides")).to_have_count(0)

    # Approved: live for everyone, no longer "Awaiting approval" for the asker.
    await pending.get_by_role("button", name="Approve").click()
    await expect(item(ben, "slides")).to_be_visible()
    await expect(item(ann, "slides")).not_to_contain_text("Awaiting approval")
    await expect(item(presenter, "slides", "live")).to_be_visible()
    await expect(presenter.locator("#pending-count")).to_have_text("0")

    # Dismissed while pending: it leaves the asker's list, and the asker is told.
    await ask(ann, "Is lunch included?")
    await dismiss(item(presenter, "lunch", "pending"), "Off topic")
    await expect(item(ann, "lunch")).to_have_count(0)
    await expect(ann.get_by_text("A moderator dismissed your question")).to_be_visible()
    await expect(item(ben, "lunch")).to_have_count(0)

    # The third question still passes; the fourth in a minute is refused, in words, by the box.
    await ask(ann, "Where is the recording?")
    await ann.get_by_label("Your question").fill("One more?")
    await ann.get_by_role("button", name="Ask", exact=True).click()
    await expect(ann.locator("#ask-error")).to_contain_text("You are asking too fast. Try again in")
    await expect(ann.get_by_label("Your question")).to_have_value("One more?")  # nothing is lost

    for tab in (presenter_tab, ann_tab, ben_tab):
        tab.assert_no_errors()


async def test_a_participant_whose_socket_is_cut_recovers_with_since(
    start_servers: StartServers, open_tab: OpenTab
) -> None:
    one, two = start_servers(2)
    _, meeting = await owner_and_meeting(one)
    ann_tab, ben_tab = await open_tab(name="ann"), await open_tab(name="ben")
    ann = await join_by_link(ann_tab, one, meeting["join_code"], "Ann")
    ben = await join_by_link(ben_tab, two, meeting["join_code"], "Ben")
    await ask(ann, "Asked before the cut")
    await expect(item(ben, "before the cut")).to_be_visible()

    # Cut Ann's socket; she stays away 1.5 s while Ben asks and votes.
    await ann.evaluate(
        """() => {
            window.joins = [];
            roomcast.client.addEventListener("joined", (e) =>
              joins.push({ room: e.detail.room, recovered: e.detail.joined.recovered }));
            roomcast.client.drop(1500);
        }"""
    )
    await expect(ann.locator("#connection")).to_have_text("Reconnecting…")
    await ask(ben, "Asked while Ann was away")
    await item(ben, "before the cut").get_by_role("button", name="Upvote").click()
    await expect(item(ben, "before the cut")).to_contain_text("1 vote")

    # Back by herself: the missed events were replayed (recovered with since), nothing twice.
    await expect(ann.locator("#connection")).to_have_text("", timeout=10_000)
    await expect(item(ann, "while Ann was away")).to_have_count(1)
    await expect(item(ann, "before the cut")).to_contain_text("1 vote")
    joins = await ann.evaluate("joins")
    assert {"room": f"meeting:{meeting['id']}", "recovered": True} in joins, joins

    # And live again afterwards.
    await ask(ben, "Asked after the reconnect")
    await expect(item(ann, "after the reconnect")).to_have_count(1)
    await expect(ann.locator("#questions > li")).to_have_count(3)

    for tab in (ann_tab, ben_tab):
        tab.assert_no_errors()


async def test_presenter_sign_in_csv_present_mode_and_sign_out(start_servers: StartServers, open_tab: OpenTab) -> None:
    (server,) = start_servers(1)
    owner, meeting = await owner_and_meeting(server)
    async with httpx.AsyncClient(base_url=server.url) as http:
        stranger = await register_user(http, display_name="Sam Stranger")

    # Wrong password: said in words.
    presenter_tab = await open_tab(name="presenter")
    presenter = presenter_tab.page
    await presenter.goto(f"{server.url}/present/{meeting['id']}")
    await presenter.get_by_label("Email").fill(owner["user"]["email"])
    await presenter.get_by_label("Password").fill("not the password")
    await presenter.get_by_role("button", name="Sign in").click()
    await expect(presenter.get_by_role("alert")).to_have_text("Wrong email or password.")
    presenter = await sign_in(presenter_tab, server, meeting, owner["user"]["email"])

    ann_tab = await open_tab(name="ann")
    ann = await join_by_link(ann_tab, server, meeting["join_code"], "Ann")
    await ask(ann, "Which question goes on the big screen?")
    await ask(ann, "A =formula question")

    # Present mode shows the top question, then the pinned one, large; Escape leaves it.
    await presenter.get_by_role("button", name="Present").click()
    screen = presenter.get_by_role("dialog")
    await expect(screen).to_be_visible()
    await expect(screen).to_contain_text("Which question goes on the big screen?")
    await expect(screen).to_contain_text(meeting["join_code"])
    await presenter.keyboard.press("Escape")
    await expect(screen).to_be_hidden()
    await item(presenter, "formula", "live").get_by_role("button", name="Pin").click()
    await presenter.get_by_role("button", name="Present").click()
    await expect(screen).to_contain_text("Pinned question")
    await expect(screen).to_contain_text("A =formula question")
    await presenter.get_by_role("button", name="Exit presentation").click()
    await expect(screen).to_be_hidden()

    # The CSV comes through the bearer token and is saved as a file.
    async with presenter.expect_download() as download_info:
        await presenter.get_by_role("link", name="Download CSV").click()
    download = await download_info.value
    assert download.suggested_filename == f"roomcast-{meeting['join_code']}-questions.csv"
    csv = (await download.path()).read_text(encoding="utf-8")
    assert "Which question goes on the big screen?" in csv
    assert "'=formula" not in csv or "A =formula question" in csv

    # A reload keeps the session (this tab's sessionStorage); signing out forgets it.
    await presenter.reload()
    await expect(presenter.get_by_role("heading", name="Town hall")).to_be_visible()
    await presenter.get_by_role("button", name="Sign out").click()
    await expect(presenter.get_by_role("button", name="Sign in")).to_be_visible()
    await presenter.reload()
    await expect(presenter.get_by_role("button", name="Sign in")).to_be_visible()

    # Someone who is neither owner nor presenter is told so, in words.
    stranger_tab = await open_tab(name="stranger")
    page = stranger_tab.page
    await page.goto(f"{server.url}/present/{meeting['id']}")
    await page.get_by_label("Email").fill(stranger["user"]["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("not its owner or one of its presenters")).to_be_visible()

    presenter_tab.assert_no_errors(allow=("401",))
    ann_tab.assert_no_errors()
    stranger_tab.assert_no_errors(allow=("404",))


async def test_a_wrong_join_code_is_explained(start_servers: StartServers, open_tab: OpenTab) -> None:
    (server,) = start_servers(1)
    tab = await open_tab(server.url + "/", name="guest", phone=True)
    page = tab.page
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("alert")).to_have_text("Enter the join code shown in the room.")
    await page.get_by_label("Join code").fill("ZZZZ-ZZZZ")
    await page.get_by_label("Your name").fill("Zed")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text(
        "No meeting has the code ZZZZZZZZ. Check the code and try again."
    )
    await expect(page.get_by_label("Join code")).to_have_attribute("aria-invalid", "true")
    tab.assert_no_errors(allow=("404",))


async def test_keyboard_only_and_the_meeting_ending(start_servers: StartServers, open_tab: OpenTab) -> None:
    """Join, ask and upvote with the keyboard alone; when the owner ends the meeting, asking closes live."""
    (server,) = start_servers(1)
    owner, meeting = await owner_and_meeting(server)
    tab = await open_tab(server.url + "/", name="keyboard")
    page = tab.page
    await page.keyboard.press("Tab")  # the skip link comes first
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.get_by_label("Join code").focus()
    await page.keyboard.type(meeting["join_code"])
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Your name")).to_be_focused()
    await page.keyboard.type("Kim")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Town hall")).to_be_visible()

    await page.get_by_label("Your question").focus()
    await page.keyboard.type("Typed without a mouse?")
    await expect(page.locator("#counter")).to_contain_text("22 / 300")
    await page.keyboard.press("Control+Enter")
    await expect(item(page, "without a mouse")).to_be_visible()
    upvote = item(page, "without a mouse").get_by_role("button", name="Upvote")
    await upvote.focus()
    await page.keyboard.press("Space")
    await expect(upvote).to_have_attribute("aria-pressed", "true")
    await expect(upvote).to_be_focused()  # the list re-rendered around it without stealing focus

    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.patch(
            f"/api/v1/meetings/{meeting['id']}",
            json={"status": "ended"},
            headers={"Authorization": f"Bearer {owner['access_token']}"},
        )
        assert response.status_code == 200, response.text
    await expect(page.get_by_text("This meeting has ended; questions are closed.")).to_be_visible()
    await expect(page.get_by_label("Your question")).to_be_disabled()
    await expect(page.get_by_role("button", name="Ask", exact=True)).to_be_disabled()
    tab.assert_no_errors()


async def test_a_participant_rides_out_a_server_restart(
    start_servers: StartServers, server_env: dict[str, str], open_tab: OpenTab
) -> None:
    """Ann's server restarts (close 1012, then nothing listens): she reconnects by herself and recovers."""
    one, two = start_servers(2)
    _, meeting = await owner_and_meeting(one)
    ann_tab, ben_tab = await open_tab(name="ann", phone=True), await open_tab(name="ben")
    ann = await join_by_link(ann_tab, two, meeting["join_code"], "Ann")
    ben = await join_by_link(ben_tab, one, meeting["join_code"], "Ben")
    await ann.evaluate(
        """() => {
            window.closes = []; window.joins = [];
            roomcast.client.addEventListener("state", (e) => closes.push(e.detail.closeCode ?? null));
            roomcast.client.addEventListener("joined", (e) =>
              joins.push({ room: e.detail.room, recovered: e.detail.joined.recovered }));
        }"""
    )
    await ask(ann, "Asked before the restart")

    await asyncio.to_thread(two.stop)
    await expect(ann.locator("#connection")).to_have_text("Reconnecting…")
    await ask(ben, "Asked while Ann's server was down")
    replacement = ServerProcess(env=server_env, port=two.port)
    try:
        await asyncio.to_thread(lambda: replacement.start().wait_ready())
        await expect(ann.locator("#connection")).to_have_text("", timeout=20_000)
        await expect(item(ann, "while Ann's server was down")).to_have_count(1)
        await expect(ann.locator("#questions > li")).to_have_count(2)
        assert 1012 in await ann.evaluate("closes")
        joins = await ann.evaluate("joins")
        assert {"room": f"meeting:{meeting['id']}", "recovered": True} in joins, joins
        await ask(ann, "Asked after the restart")
        await expect(item(ben, "after the restart")).to_be_visible()
    finally:
        await asyncio.to_thread(replacement.stop)
    ann_tab.assert_no_errors(allow=("ERR_CONNECTION_REFUSED",))  # the browser logs each refused attempt
    ben_tab.assert_no_errors()
