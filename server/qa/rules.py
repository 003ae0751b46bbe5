"""Q&A rules that need no database: question text, blocked words, the meeting's Q&A settings.

Text is trimmed and must be 1..max_question_length characters. Line breaks inside a question
are allowed (people paste multi-line questions); every other control character is refused.
Blocked words match whole words, ignoring case and accents ("Café" blocks "cafe").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import msgspec

from channels.protocol import ErrorCode, FrameError
from server.meetings.schemas import MeetingSettings


def qa_settings(raw: Any) -> MeetingSettings:
    """Read the stored settings JSON leniently: unknown keys are ignored, bad values fall back to defaults."""
    if isinstance(raw, str | bytes):
        raw = msgspec.json.decode(raw)
    if not isinstance(raw, dict):
        return MeetingSettings()
    try:
        return msgspec.convert(raw, MeetingSettings, strict=False)
    except msgspec.ValidationError:
        return MeetingSettings()


def clean_text(text: str, max_length: int) -> str:
    """The question text as stored, or FrameError(bad_request) saying why it cannot be."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise FrameError(ErrorCode.BAD_REQUEST, "the question is empty")
    if len(text) > max_length:
        raise FrameError(ErrorCode.BAD_REQUEST, f"the question is {len(text)} characters; the limit is {max_length}")
    for char in text:
        if char != "\n" and unicodedata.category(char) in ("Cc", "Cs"):
            raise FrameError(ErrorCode.BAD_REQUEST, f"the question contains a control character (U+{ord(char):04X})")
    return text


def fold(text: str) -> str:
    """Lower case without accents, so matching ignores both."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_WORD = re.compile(r"\w+")


def blocked_words_in(text: str, blocked: list[str]) -> list[str]:
    """The blocked words (as configured) that occur in `text` as whole words."""
    if not blocked:
        return []
    haystack = " " + " ".join(_WORD.findall(fold(text))) + " "
    found = []
    for word in blocked:
        needle = " ".join(_WORD.findall(fold(word)))
        if needle and f" {needle} " in haystack:
            found.append(word)
    return found
