"""Meeting persistence shared by REST, the realtime policy and the seed command."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from server.auth.passwords import hash_password
from server.auth.tables import User
from server.meetings.codes import new_join_code
from server.meetings.tables import Meeting

JOIN_CODE_ATTEMPTS = 10


async def insert_meeting(values: dict[str, Any]) -> dict[str, Any]:
    """Insert a meeting with a fresh unique join code, retrying on the rare collision."""
    for _ in range(JOIN_CODE_ATTEMPTS):
        row = {**values, "join_code": new_join_code()}
        try:
            result: list[dict[str, Any]] = await Meeting.insert(Meeting(**row)).returning(*Meeting.all_columns())
        except asyncpg.UniqueViolationError as err:
            if "join_code" not in str(err):
                raise
            continue
        return result[0]
    raise RuntimeError("could not find a free join code")


async def ensure_demo_meeting(email: str, password: str) -> dict[str, Any]:
    """The demo owner and their live meeting, created on first call and reused after."""
    owner = await User.select(User.id).where(User.email == email).first()
    if owner is None:
        owner = {"id": uuid.uuid4()}
        await User.insert(
            User(id=owner["id"], email=email, password_hash=await hash_password(password), display_name="Demo Owner")
        )
    meeting: dict[str, Any] | None = (
        await Meeting.select(*Meeting.all_columns()).where(Meeting.owner == owner["id"]).first()
    )
    if meeting is None:
        meeting = await insert_meeting(
            {"owner": owner["id"], "title": "roomcast demo", "description": "Ask anything.", "status": "live"}
        )
    return meeting
