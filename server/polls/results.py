"""Poll rules that need no database: checking an answer against its poll, and computing results.

Word clouds compare words case- and accent-insensitively with whitespace collapsed ("Café  au
lait" and "cafe au LAIT" are one word), show each in its most frequent spelling, and keep the 50
most frequent, by count then text. A word that contains one of the meeting's blocked words (whole
words, case- and accent-insensitive, as for questions) is counted nowhere. One respondent's words
count once each: answering "yes, Yes" counts "yes" once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from channels.protocol import ErrorCode, FrameError
from server.polls.frames import PollAnswer, PollResults, Respond, WordCount
from server.qa.rules import blocked_words_in, fold

MAX_WORDS = 3
MAX_WORD_LENGTH = 25
TOP_WORDS = 50


@dataclass(frozen=True, slots=True)
class PollDefinition:
    """What an answer is checked against: frozen from the poll's first opening on, so it may be cached."""

    id: str
    kind: str
    option_ids: tuple[str, ...]
    multiple: bool
    scale_max: int


def bad(message: str) -> FrameError:
    return FrameError(ErrorCode.BAD_REQUEST, message)


def clean_word(raw: str) -> str:
    """A word-cloud entry trimmed with inner whitespace collapsed; bad_request unless 1..25 characters."""
    word = " ".join(raw.split())
    if not word:
        raise bad("a word is empty")
    if len(word) > MAX_WORD_LENGTH:
        raise bad(f"a word is {len(word)} characters; the limit is {MAX_WORD_LENGTH}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in word):
        raise bad("a word contains a control character")
    return word


def word_key(word: str) -> str:
    """What two spellings of one word have in common: no case, no accents, single spaces."""
    return " ".join(fold(word).split())


def check_answer(poll: PollDefinition, frame: Respond) -> PollAnswer:
    """The answer as stored, or bad_request: the wrong field for the kind, an unknown option, a value out of range."""
    given = [name for name in ("option_ids", "value", "words") if getattr(frame, name) is not None]
    wanted = {"choice": "option_ids", "rating": "value", "word_cloud": "words"}[poll.kind]
    if given != [wanted]:
        raise bad(f"a {poll.kind} poll is answered with `{wanted}` alone")
    if poll.kind == "choice":
        assert frame.option_ids is not None
        chosen = list(dict.fromkeys(frame.option_ids))  # repeated ids count once, in the order given
        if not chosen:
            raise bad("choose at least one option")
        unknown = [option for option in chosen if option not in poll.option_ids]
        if unknown:
            raise bad(f"no such option in this poll: {unknown[0][:40]}")
        if len(chosen) > 1 and not poll.multiple:
            raise bad("this poll takes a single option")
        return PollAnswer(option_ids=chosen)
    if poll.kind == "rating":
        assert frame.value is not None
        if not 1 <= frame.value <= poll.scale_max:
            raise bad(f"value must be a whole number from 1 to {poll.scale_max}")
        return PollAnswer(value=frame.value)
    assert frame.words is not None
    if not 1 <= len(frame.words) <= MAX_WORDS:
        raise bad(f"give 1 to {MAX_WORDS} words")
    words: dict[str, str] = {}
    for raw in frame.words:
        word = clean_word(raw)
        words.setdefault(word_key(word), word)
    return PollAnswer(words=list(words.values()))


def choice_results(option_ids: Iterable[str], respondents: int, counts: dict[str, int]) -> PollResults:
    return PollResults(respondents=respondents, counts={option: counts.get(option, 0) for option in option_ids})


def rating_results(scale_max: int, counts: dict[int, int]) -> PollResults:
    respondents = sum(counts.get(value, 0) for value in range(1, scale_max + 1))
    total = sum(value * counts.get(value, 0) for value in range(1, scale_max + 1))
    return PollResults(
        respondents=respondents,
        counts={str(value): counts.get(value, 0) for value in range(1, scale_max + 1)},
        average=round(total / respondents, 2) if respondents else None,
    )


def word_cloud_results(respondents: int, spellings: Iterable[tuple[str, int]], blocked: list[str]) -> PollResults:
    """`spellings` are (stored word, how many respondents gave it exactly so)."""
    totals: dict[str, int] = {}
    by_spelling: dict[str, dict[str, int]] = {}
    for spelling, count in spellings:
        if blocked and blocked_words_in(spelling, blocked):
            continue
        key = word_key(spelling)
        totals[key] = totals.get(key, 0) + count
        forms = by_spelling.setdefault(key, {})
        forms[spelling] = forms.get(spelling, 0) + count
    words = [
        WordCount(text=min(by_spelling[key].items(), key=lambda form: (-form[1], form[0]))[0], count=total)
        for key, total in totals.items()
    ]
    words.sort(key=lambda word: (-word.count, word.text))
    return PollResults(respondents=respondents, words=words[:TOP_WORDS])


def empty_results(kind: str, option_ids: Iterable[str], scale_max: int) -> PollResults:
    if kind == "choice":
        return choice_results(option_ids, 0, {})
    if kind == "rating":
        return rating_results(scale_max, {})
    return PollResults(respondents=0, words=[])
