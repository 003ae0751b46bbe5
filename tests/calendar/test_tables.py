"""The calendar's Piccolo tables match what its migration created, column by column."""

from __future__ import annotations

import asyncpg
import pytest
from piccolo.columns import ForeignKey
from piccolo.table import Table

from server.calendar.tables import CalendarConnection, CalendarEvent

SQL_TYPES = {
    "UUID": "uuid",
    "Varchar": "character varying",
    "Text": "text",
    "Timestamptz": "timestamp with time zone",
    "Boolean": "boolean",
    "ForeignKey": "uuid",
}


@pytest.mark.parametrize("table", [CalendarConnection, CalendarEvent])
async def test_table_matches_the_migration(database_url: str, table: type[Table]) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            """SELECT column_name, data_type, is_nullable, character_maximum_length
               FROM information_schema.columns WHERE table_name = $1""",
            table._meta.tablename,
        )
    finally:
        await connection.close()
    database = {row["column_name"]: row for row in rows}
    piccolo = {column._meta.db_column_name: column for column in table._meta.columns}
    assert set(database) == set(piccolo)
    for name, column in piccolo.items():
        row = database[name]
        kind = "ForeignKey" if isinstance(column, ForeignKey) else type(column).__name__
        assert row["data_type"] == SQL_TYPES[kind], name
        assert (row["is_nullable"] == "YES") == column._meta.null, name
        if kind == "Varchar":
            assert row["character_maximum_length"] == column.length, name
