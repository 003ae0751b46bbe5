"""`moderate` is a table: every action the protocol allows has exactly one transition."""

from __future__ import annotations

from typing import get_args

from server.qa.frames import ModerateAction
from server.qa.service import TRANSITIONS


def test_every_moderate_action_has_one_transition() -> None:
    assert set(TRANSITIONS) == set(get_args(ModerateAction))
    for action, transition in TRANSITIONS.items():
        assert transition.assignments is not None or transition.step.__name__ != "_no_step", action
