"""Request bodies of the poll setup endpoints; a poll on the wire is `server.polls.frames.PollOut`.

Request structs forbid unknown fields and state every limit msgspec can check; the rules that
need the whole poll (options by kind, unique option texts) are in `server.polls.service`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from server.polls.frames import PollKind, PollOut, ShowResults
from server.rest import one_line

ScaleMax = Annotated[int, Meta(ge=2, le=10, description="The top of a rating scale, 2..10.")]
Position = Annotated[int, Meta(ge=0, description="0-based place in the meeting's list; past the end means last.")]
Title = Annotated[str, one_line(200)]
Options = Annotated[
    list[Annotated[str, one_line(120)]], Meta(max_length=12, description="2..12 option texts for a choice poll.")
]


class PollCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: PollKind
    title: Title
    """1..200 characters after trimming."""
    options: Options | None = None
    """Choice polls: 2..12 texts, each 1..120 characters, unique ignoring case. Other kinds: none."""
    multiple: bool = False
    """Choice polls: may a respondent pick several options."""
    scale_max: ScaleMax = 5
    anonymous: bool = True
    """Nobody, presenters and the export included, learns who answered what."""
    show_results: ShowResults = "live"
    """`live`: everyone sees results as they come in; `closed`: once closed; `never`: owner and presenters only."""


class PollPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Any field of the create body (only until the poll was first opened, except `show_results`), or `position`."""

    kind: PollKind | UnsetType = UNSET
    title: Title | UnsetType = UNSET
    options: Options | UnsetType | None = UNSET
    multiple: bool | UnsetType = UNSET
    scale_max: ScaleMax | UnsetType = UNSET
    anonymous: bool | UnsetType = UNSET
    show_results: ShowResults | UnsetType = UNSET
    position: Position | UnsetType = UNSET


class PollList(msgspec.Struct, kw_only=True):
    items: list[PollOut]
    """The meeting's polls by `position`."""


FROZEN_FIELDS = ("kind", "title", "options", "multiple", "scale_max", "anonymous")
"""What a PATCH may no longer change once the poll was opened (409)."""
