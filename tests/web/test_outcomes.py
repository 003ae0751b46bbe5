"""The asker always learns what became of their question, whatever order the two rooms' events arrive in.

An asker's page hears of their question from the meeting room (approved, answered; a dismissal
only as `question.removed`) and from their own `user:<id>` room (every change, with the reason),
plus notifications. The rooms are not ordered against each other, so each page here holds back
one room's events: Ann (named) hears her own room last, Ben (anonymous) hears the meeting room
last. Moderation is driven over the protocol, so this pins the pages, not the presenter's tools.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from tests.helpers import live_meeting, register_user
from tests.web.conftest import OpenTab
from tests.web.test_browser import StartServers, ask, item, join_by_link
from tests.wsclient import connect

pytestmark = pytest.mark.browser

HOLD_BACK_MS = 600


async def hold_back(page: Page, room: str) -> None:
    """Deliver `room`'s events to the page HOLD_BACK_MS late (in order), so the other room's come first."""
    await page.evaluate(
        """([room, ms]) => {
            const sub = roomcast.client._rooms.get(room.replace("USER", roomcast.client.user?.id ?? ""));
            if (!sub) throw new Error("not subscribed to " + room);
            const deliver = sub.handlers.event;
            sub.handlers.event = (event) => setTimeout(() => deliver(event), ms);
        }""",
        [room, HOLD_BACK_MS],
    )


def exactly(page: Page, text: str) -> Locator:
    """The item whose question text is exactly `text` (a merged question's tag quotes another's text)."""
    return page.locator("#questions > li").filter(has=page.locator(".q-text").get_by_text(text, exact=True))


async def user_room(page: Page) -> str:
    return str(await page.evaluate("[...roomcast.client._rooms.keys()].find((r) => r.startsWith('user:'))"))


async def test_named_and_anonymous_askers_learn_every_outcome_in_either_order(
    start_servers: StartServers, open_tab: OpenTab
) -> None:
    one, two = start_servers(2)

    async with httpx.AsyncClient(base_url=one.url) as http:
        owner = await register_user(http, display_name="Olivia Owner")
        meeting = await live_meeting(http, owner["access_token"], "Town hall", settings={"moderation": "pre"})
    code, room = meeting["join_code"], f"meeting:{meeting['id']}"
    ann_tab, ben_tab = await open_tab(name="ann"), await open_tab(name="ben", phone=True)
    ann = await join_by_link(ann_tab, one, code, "Ann")
    ben = await join_by_link(ben_tab, two, code, "Ben")
    await expect(ann.locator("#presence")).to_have_text("2 people here", timeout=8000)
    await hold_back(ann, await user_room(ann))  # Ann: the meeting room first, her own room late
    await hold_back(ben, room)  # Ben: his own room first, the meeting room late

    askers: list[tuple[Page, str, bool]] = [(ann, "Ann", False), (ben, "Ben", True)]
    for page, name, anonymous in askers:
        for topic in ("roadmap", "parking", "duplicate", "lunch"):
            await ask(page, f"{name}'s question about the {topic}?", anonymous=anonymous)
        await expect(item(page, f"{name}'s question about the roadmap")).to_contain_text("Awaiting approval")

    async with connect(one.ws_url, owner["access_token"]) as moderator:
        joined = await moderator.join(f"{room}:moderation")
        ids = {q["text"]: q["id"] for q in joined["snapshot"]["questions"]}

        async def moderate(question: str, action: str, **extra: Any) -> None:
            reply = await moderator.request(
                {"type": "moderate", "room": f"{room}:moderation", "question_id": ids[question], "action": action}
                | extra
            )
            assert reply["type"] == "reply", reply

        for page, name, _ in askers:
            roadmap, parking, duplicate, lunch = (
                f"{name}'s question about the {t}?" for t in ("roadmap", "parking", "duplicate", "lunch")
            )
            notice = page.locator("#meeting-notice")
            await moderate(roadmap, "approve")
            await expect(notice).to_contain_text(f"Your question “{roadmap}” was approved")
            await expect(item(page, roadmap)).not_to_contain_text("Awaiting approval")

            await moderate(roadmap, "answer", text=f"Yes, {name}: in March.")
            await expect(notice).to_have_text(f"Your question “{roadmap}” was answered: Yes, {name}: in March.")
            await expect(item(page, roadmap)).to_contain_text(f"Yes, {name}: in March.")

            await moderate(parking, "approve")
            await expect(notice).to_contain_text("was approved")
            await moderate(parking, "dismiss", reason="off_topic")  # dismissed after it went live
            await expect(notice).to_have_text(f"A moderator dismissed your question “{parking}”: it is off topic.")
            await expect(item(page, parking)).to_have_count(0)

            reply = await moderator.request(
                {"type": "merge", "room": f"{room}:moderation", "question_id": ids[duplicate], "into_id": ids[roadmap]}
            )
            assert reply["type"] == "reply", reply
            await expect(notice).to_have_text(
                f"Your question “{duplicate}” was merged into “{roadmap}”; your vote now counts there."
            )

            await moderate(lunch, "dismiss", reason="inappropriate")  # dismissed while pending
            await expect(notice).to_have_text(
                f"A moderator dismissed your question “{lunch}”: it is not appropriate here."
            )

            # "My questions" keeps every outcome, with its reason
            await page.get_by_role("button", name="My questions").click()
            await expect(exactly(page, roadmap)).to_contain_text("Answered")
            await expect(exactly(page, parking)).to_contain_text("Dismissed: it is off topic")
            await expect(exactly(page, duplicate)).to_contain_text(f"Merged into “{roadmap}”")
            await expect(exactly(page, lunch)).to_contain_text("Dismissed: it is not appropriate here")
            await page.reload()  # and after a reload too
            await page.get_by_role("button", name="My questions").click()
            await expect(exactly(page, parking)).to_contain_text("Dismissed: it is off topic")
            await expect(page.locator("#questions > li")).to_have_count(4)

    for tab in (ann_tab, ben_tab):
        tab.assert_no_errors()
