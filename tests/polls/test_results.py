"""Poll rules without a server: answers checked against their poll, and results by kind."""

from __future__ import annotations

import pytest

from channels.protocol import FrameError
from server.polls.frames import PollAnswer, Respond
from server.polls.results import PollDefinition, check_answer, rating_results, word_cloud_results

CHOICE = PollDefinition(id="p", kind="choice", option_ids=("a", "b", "c"), multiple=False, scale_max=5)
MULTI = PollDefinition(id="p", kind="choice", option_ids=("a", "b", "c"), multiple=True, scale_max=5)
RATING = PollDefinition(id="p", kind="rating", option_ids=(), multiple=False, scale_max=4)
CLOUD = PollDefinition(id="p", kind="word_cloud", option_ids=(), multiple=False, scale_max=5)


def frame(**answer: object) -> Respond:
    return Respond(room="meeting:x", poll_id="p", **answer)  # type: ignore[arg-type]


def test_answers_are_checked_against_their_poll() -> None:
    assert check_answer(CHOICE, frame(option_ids=["b"])) == PollAnswer(option_ids=["b"])
    assert check_answer(MULTI, frame(option_ids=["c", "a", "c"])) == PollAnswer(option_ids=["c", "a"])
    assert check_answer(RATING, frame(value=4)) == PollAnswer(value=4)
    assert check_answer(CLOUD, frame(words=["  Big   data ", "big DATA", "AI"])) == PollAnswer(words=["Big data", "AI"])


@pytest.mark.parametrize(
    ("poll", "answer"),
    [
        (CHOICE, {"value": 1}),  # the wrong field for the kind
        (CHOICE, {"option_ids": ["a"], "value": 1}),  # two fields
        (CHOICE, {}),
        (CHOICE, {"option_ids": []}),
        (CHOICE, {"option_ids": ["z"]}),  # an unknown option
        (CHOICE, {"option_ids": ["a", "b"]}),  # several on a single-choice poll
        (RATING, {"value": 0}),
        (RATING, {"value": 5}),  # scale_max is 4
        (RATING, {"words": ["4"]}),
        (CLOUD, {"words": []}),
        (CLOUD, {"words": ["a", "b", "c", "d"]}),
        (CLOUD, {"words": ["   "]}),
        (CLOUD, {"words": ["x" * 26]}),
        (CLOUD, {"words": ["bell\u0007"]}),
        (CLOUD, {"option_ids": ["a"]}),
    ],
)
def test_bad_answers_are_bad_requests(poll: PollDefinition, answer: dict[str, object]) -> None:
    with pytest.raises(FrameError) as refused:
        check_answer(poll, frame(**answer))
    assert refused.value.code == "bad_request"


def test_a_word_of_25_characters_is_fine() -> None:
    assert check_answer(CLOUD, frame(words=["x" * 25])) == PollAnswer(words=["x" * 25])


def test_rating_counts_every_step_and_averages() -> None:
    results = rating_results(4, {1: 1, 4: 2})
    assert results.respondents == 3
    assert results.counts == {"1": 1, "2": 0, "3": 0, "4": 2}
    assert results.average == 3.0
    empty = rating_results(3, {})
    assert (empty.respondents, empty.counts, empty.average) == (0, {"1": 0, "2": 0, "3": 0}, None)


def test_word_cloud_merges_spellings_and_shows_the_most_frequent() -> None:
    spellings = [("Café", 3), ("cafe", 1), ("CAFÉ  ", 1), ("tea", 5), ("Tea", 1), ("beer", 2)]
    results = word_cloud_results(7, spellings, [])
    assert results.respondents == 7
    assert [(w.text, w.count) for w in results.words] == [("tea", 6), ("Café", 5), ("beer", 2)]  # type: ignore[union-attr]


def test_word_cloud_orders_by_count_then_text_and_keeps_fifty() -> None:
    spellings = [(f"w{n:03d}", 1) for n in range(80)] + [("zebra", 2)]
    words = word_cloud_results(81, spellings, []).words
    assert isinstance(words, list)
    assert len(words) == 50
    assert words[0].text == "zebra"
    assert [w.text for w in words[1:4]] == ["w000", "w001", "w002"]


def test_blocked_words_are_counted_nowhere() -> None:
    spellings = [("Darn it", 2), ("DÁRN", 1), ("darned", 1), ("fine", 1)]
    words = word_cloud_results(5, spellings, ["darn"]).words
    assert isinstance(words, list)
    assert {w.text: w.count for w in words} == {"darned": 1, "fine": 1}  # whole words, as for questions
