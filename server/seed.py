"""`roomcast seed`: a demo owner and a live meeting, so a newcomer has something to open."""

from __future__ import annotations

from server.settings import Settings

DEMO_EMAIL = "demo@roomcast.local"
DEMO_PASSWORD = "roomcast-demo"


async def seed_demo(settings: Settings) -> str:
    """Create the demo data once (re-running reuses it) and return what to print."""
    from server.db import Database
    from server.meetings.service import ensure_demo_meeting

    database = Database(settings.database_url or "")
    await database.start()
    try:
        meeting = await ensure_demo_meeting(database.pool, DEMO_EMAIL, DEMO_PASSWORD)
    finally:
        await database.close()
    return (
        f"join code: {meeting.join_code}\n"
        f"owner login: {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
        f"participant page: {settings.public_url}/m/{meeting.join_code}\n"
        f"presenter page: {settings.public_url}/present/{meeting.id}"
    )
