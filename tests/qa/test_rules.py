"""Question text and blocked-word rules, as a participant meets them."""

from __future__ import annotations

import pytest

from channels.protocol import FrameError
from server.meetings.schemas import MeetingSettings
from server.qa.rules import blocked_words_in, clean_text, qa_settings


def test_text_is_trimmed_and_newlines_inside_are_kept() -> None:
    assert clean_text("  Why?\r\nAnd how?  ", 300) == "Why?\nAnd how?"


@pytest.mark.parametrize(
    ("text", "limit", "why"),
    [
        ("   ", 300, "empty"),
        ("x" * 301, 300, "301 characters; the limit is 300"),
        ("bell\x07", 300, "control character (U+0007)"),
        ("nul\x00here", 300, "control character (U+0000)"),
        ("esc\x1b[31m", 300, "control character (U+001B)"),
    ],
)
def test_bad_text_is_refused_with_a_reason(text: str, limit: int, why: str) -> None:
    with pytest.raises(FrameError) as error:
        clean_text(text, limit)
    assert error.value.code == "bad_request"
    assert why in error.value.message


def test_exactly_the_limit_is_accepted() -> None:
    assert clean_text("é" * 300, 300) == "é" * 300


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("This is CRAP, honestly", ["crap"]),
        ("Le café est froid", ["cafe"]),
        ("crappy is not a whole-word match", []),
        ("a Bad Word appears", ["bad word"]),
        ("nothing to see", []),
    ],
)
def test_blocked_words_are_whole_words_ignoring_case_and_accents(text: str, found: list[str]) -> None:
    assert blocked_words_in(text, ["crap", "cafe", "bad word"]) == found


def test_settings_fall_back_to_the_spec_defaults() -> None:
    assert qa_settings({}) == MeetingSettings(
        moderation="post", anonymous_questions=True, max_question_length=300, blocked_words=[]
    )
    assert qa_settings({"moderation": "pre", "unknown": 1}).moderation == "pre"
    assert qa_settings(b'{"max_question_length": 20}').max_question_length == 20
