"""The reminder scan asks for meetings starting soon every few seconds: index that question."""

from roomcast_sql import sql_migration

ID = "2026-11-24T21:00:00:000021"
VERSION = "1.38.0"
DESCRIPTION = "index of upcoming meetings by start time"

STATEMENTS = [
    "CREATE INDEX meetings_upcoming ON meetings (starts_at) WHERE status IN ('scheduled', 'live')",
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
