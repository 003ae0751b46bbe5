"""What happens in other features that people are told about. Each trigger calls `notify()`."""

from __future__ import annotations

from typing import Any

from server.notifications.service import notify
from server.services import Services

DISMISS_REASONS = {
    "duplicate": "it was already asked",
    "off_topic": "it is off topic",
    "inappropriate": "it was found inappropriate",
    "answered": "it has already been answered",
    "other": "the moderators decided so",
}


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def question_answered(services: Services, question: dict[str, Any]) -> None:
    """Tell the asker (anonymous or guest too: anonymity hides them from others, not from themselves)."""
    await notify(
        services,
        question["author"],
        "question.answered",
        "Your question was answered",
        question["answer"] or _excerpt(question["text"]),
        {"meeting_id": str(question["meeting"]), "question_id": str(question["id"])},
    )


async def question_dismissed(services: Services, question: dict[str, Any]) -> None:
    reason = question["dismiss_reason"]
    await notify(
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
