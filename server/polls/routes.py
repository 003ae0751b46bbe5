"""Poll setup over REST (owner, presenter; anyone else 404 as for meetings) and the answers' CSV export.

Setup changes take the meeting's poll lock (`service.in_order`), commit, and publish their room
events before letting go of it, so they interleave with live actions in one order everywhere.
A failed publish is logged and the REST call still succeeds: clients catch up from the snapshot.

The export has one row per answer: poll id, poll title, kind, the answer (option texts or words
joined with "; ", or the rating), the respondent's name (blank for anonymous polls, whose
respondents are never read) and when the answer was last given. Cells are neutralised against
spreadsheet formulas as in the questions export.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream

from server.meetings.guards import meeting_role
from server.polls import service
from server.polls.events import poll_view, publish_changes
from server.polls.frames import PollOut
from server.polls.schemas import PollCreate, PollList, PollPatch
from server.qa.routes import csv_stream
from server.rest import Body, csv_responses, decode, error_responses
from server.services import Services
from server.times import iso_z

log = logging.getLogger("roomcast.polls")

MODERATORS = meeting_role("owner", "presenter")
CSV_HEADER = ["poll_id", "poll", "kind", "answer", "respondent", "answered_at"]


async def _publish(services: Services, meeting_id: uuid.UUID, changes: list[service.Change]) -> None:
    try:
        await publish_changes(services.broker, changes)
    except Exception:
        log.exception("polls.publish_failed", extra={"meeting_id": str(meeting_id)})


@post(
    "/meetings/{meeting_id:uuid}/polls",
    status_code=201,
    guards=[MODERATORS],
    responses=error_responses(400, 401, 403, 404, 422),
)
async def create_poll(
    meeting_id: FromPath[uuid.UUID], data: Body[PollCreate], services: NamedDependency[Services]
) -> PollOut:
    """Prepare a poll (status `draft`, last in the list); only owner and presenters see it until it is opened."""
    body = decode(data, PollCreate)
    async with service.in_order(services.db, meeting_id) as commit:
        change = await service.create(meeting_id, body)
        await commit()
        await _publish(services, meeting_id, [change])
    assert change.after is not None
    log.info("polls.created", extra={"meeting_id": str(meeting_id), "poll_id": str(change.after["id"])})
    return poll_view(change.after, change.results, moderator=True)


@get("/meetings/{meeting_id:uuid}/polls", guards=[MODERATORS], responses=error_responses(401, 403, 404))
async def list_polls(meeting_id: FromPath[uuid.UUID], services: NamedDependency[Services]) -> PollList:
    """Every poll of the meeting, drafts too, by `position`, with results."""
    computed = await service.with_results(await service.list_polls(meeting_id, drafts=True))
    return PollList(items=[poll_view(row, results, moderator=True) for row, results in computed])


@patch(
    "/meetings/{meeting_id:uuid}/polls/{poll_id:uuid}",
    guards=[MODERATORS],
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def update_poll(
    meeting_id: FromPath[uuid.UUID],
    poll_id: FromPath[uuid.UUID],
    data: Body[PollPatch],
    services: NamedDependency[Services],
) -> PollOut:
    """Change any field of the create body until the poll is first opened (then 409), `show_results` and
    `position` (0-based; the other polls shift) at any time."""
    patch_body = decode(data, PollPatch)
    async with service.in_order(services.db, meeting_id) as commit:
        changes = await service.update(meeting_id, poll_id, patch_body)
        await commit()
        await _publish(services, meeting_id, changes)
    change = changes[0]
    assert change.after is not None
    return poll_view(change.after, change.results, moderator=True)


@delete(
    "/meetings/{meeting_id:uuid}/polls/{poll_id:uuid}",
    status_code=204,
    guards=[MODERATORS],
    responses=error_responses(401, 403, 404),
)
async def delete_poll(
    meeting_id: FromPath[uuid.UUID], poll_id: FromPath[uuid.UUID], services: NamedDependency[Services]
) -> None:
    """Delete the poll and its answers; rooms that saw it get `poll.removed`."""
    async with service.in_order(services.db, meeting_id) as commit:
        change = await service.delete(meeting_id, poll_id)
        await commit()
        await _publish(services, meeting_id, [change])
    log.info("polls.deleted", extra={"meeting_id": str(meeting_id), "poll_id": str(poll_id)})


def answer_text(row: service.Row) -> str:
    if row["kind"] == "choice":
        texts = {option["id"]: option["text"] for option in row["options"]}
        return "; ".join(texts.get(option_id, "") for option_id in row["option_ids"])
    if row["kind"] == "rating":
        return str(row["value"])
    return "; ".join(row["words"])


async def answer_cells(services: Services, meeting_id: uuid.UUID) -> AsyncIterator[list[Any]]:
    async for row in service.export_rows(meeting_id):
        yield [
            str(row["poll_id"]),
            row["title"],
            row["kind"],
            answer_text(row),
            "" if row["anonymous"] else (row["respondent"] or ""),
            iso_z(row["updated_at"]),
        ]


@get(
    "/meetings/{meeting_id:uuid}/polls.csv",
    guards=[MODERATORS],
    media_type="text/csv",
    responses=csv_responses("One row per answer: " + ", ".join(CSV_HEADER), 401, 403, 404),
    summary="Export every answer to a meeting's polls as CSV",
)
async def export_answers(meeting_id: FromPath[uuid.UUID], services: NamedDependency[Services]) -> Stream:
    return Stream(
        csv_stream(CSV_HEADER, answer_cells(services, meeting_id)),
        media_type="text/csv",  # Litestar adds `; charset=utf-8` to text types itself
        headers={"Content-Disposition": f'attachment; filename="polls-{meeting_id}.csv"'},
    )


router = Router(
    path="/api/v1",
    route_handlers=[create_poll, list_polls, update_poll, delete_poll, export_answers],
    tags=["polls"],
)
