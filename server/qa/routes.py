"""`GET /api/v1/meetings/{id}/questions.csv`: every question of a meeting, streamed (owner, presenter).

Rows are read in pages (`server.qa.service.export_pages`), each on a pooled connection that goes
back to the pool before the page is sent, so a meeting with 100,000 questions is never held in
memory and a client that never reads holds no connection. One user may have `exports_per_user`
exports streaming at once, counted in Redis across processes; more are 429. Cells that a
spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab, a carriage return
or NUL) are prefixed with `'`. Anonymous
questions have an empty author, for the owner too.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from litestar import Router, get
from litestar.di import NamedDependency
from litestar.response import Stream

from server.auth.guards import DEPENDENCIES
from server.auth.identity import Principal
from server.errors import rate_limited
from server.meetings.guards import meeting_role
from server.qa.service import export_pages
from server.rest import csv_responses
from server.services import Services
from server.times import iso_z

HEADER = ["id", "status", "pinned", "votes", "author", "anonymous", "text", "answer", "created_at", "answered_at"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
ROWS_PER_CHUNK = 200
EXPORT_SLOT_S = 300
"""An export that has sent nothing for this long (a reader that stopped) no longer counts against its user."""
EXPORT_RETRY_S = 5

# KEYS[1]: the user's running exports (a sorted set of tokens by last progress).
# ARGV: now, the limit, the slot lifetime, this export's token. Returns 1 if it may start.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


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


async def question_cells(
    services: Services, meeting_id: uuid.UUID, slot_key: str, token: str
) -> AsyncIterator[list[Any]]:
    """The CSV's rows, a page at a time; gives the export's slot back when done (or abandoned)."""
    try:
        async for page in export_pages(meeting_id):
            await services.redis.zadd(slot_key, {token: time.time()}, xx=True)  # still making progress
            for row in page:
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
    finally:
        await services.redis.zrem(slot_key, token)


@get(
    "/meetings/{meeting_id:uuid}/questions.csv",
    guards=[meeting_role("owner", "presenter")],
    tags=["questions"],
    summary="Export every question of a meeting as CSV",
    media_type="text/csv",
    responses=csv_responses("Every question, oldest first: " + ", ".join(HEADER), 400, 401, 403, 404, 429),
)
async def export_questions(
    meeting_id: uuid.UUID, services: NamedDependency[Services], principal: NamedDependency[Principal]
) -> Stream:
    slot_key = services.key("exports", str(principal.user_id))
    token = uuid.uuid4().hex
    take = services.redis.register_script(_TAKE_SLOT)
    limit = services.settings.exports_per_user
    if not await take(keys=[slot_key], args=[time.time(), limit, EXPORT_SLOT_S, token]):
        raise rate_limited(EXPORT_RETRY_S)
    return Stream(
        csv_stream(HEADER, question_cells(services, meeting_id, slot_key, token)),
        media_type="text/csv",  # Litestar adds `; charset=utf-8` to text types itself
        headers={"Content-Disposition": f'attachment; filename="questions-{meeting_id}.csv"'},
    )


router = Router(path="/api/v1", route_handlers=[export_questions], dependencies=DEPENDENCIES)
