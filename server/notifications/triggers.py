"""What happens in other features that people are told about. Each trigger calls `notify()`.

A trigger runs after the action it reports has committed, so it never undoes or fails that
action: a notification that cannot be sent is logged with its ids and the action stands.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from server.notifications.service import notify
from server.notifications.tables import Notification
from server.services import Services

log = logging.getLogger("roomcast.notifications")

DISMISS_REASONS = {
    "duplicate": "it was already asked",
    "off_topic": "it is off topic",
    "inappropriate": "it was found inappropriate",
    "answered": "it has already been answered",
    "other": "the moderators decided so",
}


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _send(
    services: Services, user_id: uuid.UUID | None, kind: str, title: str, body: str, data: dict[str, Any]
) -> None:
    if user_id is None:  # a question whose author deleted their account: nobody to tell
        return
    try:
        await notify(services, user_id, kind, title, body, data)
    except Exception:
        log.exception("notification.failed", extra={"kind": kind, "user_id": str(user_id), **data})


async def question_answered(services: Services, question: dict[str, Any]) -> None:
    """Tell the asker (anonymous or guest too: anonymity hides them from others, not from themselves)."""
    await _send(
        services,
        question["author"],
        "question.answered",
        "Your question was answered",
        question["answer"] or _excerpt(question["text"]),
        {"meeting_id": str(question["meeting"]), "question_id": str(question["id"])},
    )


async def question_dismissed(services: Services, question: dict[str, Any]) -> None:
    reason = question["dismiss_reason"]
    await _send(
        services,
        question["author"],
        "question.dismissed",
        "Your question was dismissed",
        f"{_excerpt(question['text'])} — {DISMISS_REASONS.get(reason or '', 'the moderators decided so')}",
        {
            "meeting_id": str(question["meeting"]),
            "question_id": str(question["id"]),
            "reason": reason,
            "merged_into": str(question["merged_into"]) if question["merged_into"] else None,
        },
    )


async def presenter_added(services: Services, meeting_id: uuid.UUID, user_id: uuid.UUID) -> None:
    # hand SQL: the meetings table belongs to server.meetings, a layer above this one (pyproject's import contracts)
    meetings = await Notification.raw("SELECT title FROM meetings WHERE id = {}", meeting_id)
    title = meetings[0]["title"] if meetings else None
    await _send(
        services,
        user_id,
        "presenter.added",
        "You are now a presenter",
        f"You can moderate the Q&A of {title}.",
        {"meeting_id": str(meeting_id)},
    )
