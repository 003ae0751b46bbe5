"""`roomcast seed`: a demo owner, a live meeting and a few questions, so a newcomer has something to open."""

from __future__ import annotations

import ipaddress
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from server.settings import Settings

if TYPE_CHECKING:
    from server.db import Database

DEMO_EMAIL = "demo@roomcast.local"
DEMO_PASSWORD = "roomcast-demo"
DEMO_QUESTIONS = [
    ("Priya", "What is on the roadmap for next quarter?", 3),
    ("Tom", "Will the recordings be shared after the meeting?", 1),
    ("Ana", "How can I join the beta programme?", 0),
]
"""Asker, text and how many demo voters back it."""


def links_base(public_url: str, host: str | None, port: int | None) -> str:
    """The base URL of the printed links: `host`/`port` as given to `roomcast serve`, else `public_url`.

    A wildcard listen address (0.0.0.0, ::) is not an address a browser can open, so the links
    name the loopback address instead; an IPv6 address gets its brackets.
    """
    if host is None and port is None:
        return public_url.rstrip("/")
    current = urlsplit(public_url)
    host = host or current.hostname or "127.0.0.1"
    port = port or current.port or 8000
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    if address is not None:
        host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}"


async def seed_demo(settings: Settings, base_url: str | None = None) -> str:
    """Create the demo data once (re-running reuses it) and return what to print, links under `base_url`."""
    base_url = base_url or settings.public_url.rstrip("/")
    from server.db import Database
    from server.meetings.service import ensure_demo_meeting

    database = Database(settings.database_url or "")
    await database.start()
    try:
        meeting = await ensure_demo_meeting(DEMO_EMAIL, DEMO_PASSWORD)
        await _demo_questions(database, meeting.id)
    finally:
        await database.close()
    return (
        f"join code: {meeting.join_code}\n"
        f"owner login: {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
        f"home page (sign in as the owner): {base_url}/\n"
        f"participant page: {base_url}/m/{meeting.join_code}\n"
        f"presenter page: {base_url}/present/{meeting.id}"
    )


async def _demo_questions(database: Database, meeting_id: uuid.UUID) -> None:
    """A few questions asked and upvoted by demo guests, the first time only (nothing is published)."""
    from server.qa import service
    from server.qa.tables import Question

    if await Question.count().where(Question.meeting == meeting_id):
        return
    voters = [await _guest(meeting_id, f"Voter {n}") for n in range(max(v for *_, v in DEMO_QUESTIONS))]
    for name, text, votes in DEMO_QUESTIONS:
        question, _ = await service.ask(
            database.pool, meeting_id, await _guest(meeting_id, name), text, anonymous=False, client_id=None
        )
        for voter in voters[:votes]:
            await service.vote(database.pool, meeting_id, question["id"], voter, True)


async def _guest(meeting_id: uuid.UUID, name: str) -> uuid.UUID:
    from server.auth.tables import User

    [row] = await User.insert(User(display_name=name, guest_meeting_id=meeting_id)).returning(User.id)
    user_id: uuid.UUID = row["id"]
    return user_id
