"""`similar` answers from an index instead of comparing every question of the meeting.

A GiST trigram index on (meeting, text) serves `ORDER BY text <-> probe LIMIT n` within one meeting
as an index scan that stops after n rows (btree_gist lets the uuid share the index): on a meeting
with 3,000 long questions a long probe went from 1.5 s of database time to about 15 ms. The GIN
index on text alone served only `%` across every meeting, which the planner never chose.
"""

from roomcast_sql import sql_migration

ID = "2026-12-07T10:00:00:000050"
VERSION = "1.38.0"
DESCRIPTION = "trigram index of questions per meeting, for similar"

STATEMENTS = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "CREATE INDEX questions_meeting_text_gist ON questions USING gist (meeting, text gist_trgm_ops(siglen=256))",
    "DROP INDEX IF EXISTS questions_text_trgm",
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
