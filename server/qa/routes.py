"""`GET /api/v1/meetings/{id}/questions.csv`: every question of a meeting, streamed (owner, presenter).

Rows come from a server-side cursor and leave as they are read, so a meeting with 100,000
questions is never held in memory. Cells that a spreadsheet would run as a formula (starting
with `=`, `+`, `-`, `@`, a tab, a carriage return or NUL) are prefixed with `'`. Anonymous
questions have an empty author, for the owner too.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from litestar import Router, get
from litestar.di import NamedDependency
from litestar.response import Stream

from server.meetings.guards import meeting_role
from server.qa.service import export_rows
from server.services import Services
from server.times import iso_z

HEADER = ["id", "status", "pinned", "votes", "author", "anonymous", "text", "answer", "created_at", "answered_at"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
ROWS_PER_CHUNK = 200


def neutralise(cell: str) -> str:
    """A cell no spreadsheet will evaluate (OWASP's CSV injection advice)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def csv_line(cells: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([neutralise(str(c)) if isinstance(c, str) else c for c in cells])
    return buffer.getvalue()


async def csv_stream(header: list[str], rows: AsyncIterator[list[Any]]) -> AsyncIterator[bytes]:
    """A CSV document (header, then `rows`, every cell neutralised), in chunks of ROWS_PER_CHUNK lines."""
    lines = [csv_line(header)]
    async for row in rows:
        lines.append(csv_line(row))
        if len(lines) >= ROWS_PER_CHUNK:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()


async def question_cells(services: Services, meeting_id: uuid.UUID) -> AsyncIterator[list[Any]]:
    async for row in export_rows(services.db.pool, meeting_id):
        yield [
            str(row["id"]),
            row["status"],
            "true" if row["pinned"] else "false",
            row["votes"],
            "" if row["anonymous"] else row["author_name"] or "",
            "true" if row["anonymous"] else "false",
            row["text"],
            row["answer"] or "",
            iso_z(row["created_at"]),
            iso_z(row["answered_at"]) or "",
        ]


@get(
    "/meetings/{meeting_id:uuid}/questions.csv",
    guards=[meeting_role("owner", "presenter")],
    tags=["questions"],
    summary="Export every question of a meeting as CSV",
)
async def export_questions(meeting_id: uuid.UUID, services: NamedDependency[Services]) -> Stream:
    return Stream(
        csv_stream(HEADER, question_cells(services, meeting_id)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="questions-{meeting_id}.csv"'},
    )


router = Router(path="/api/v1", route_handlers=[export_questions])
