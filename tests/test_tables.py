"""One description of the schema: every Piccolo table matches what the migrations created, column by column.

The migrations (plain SQL) are the truth; the tables in each feature's `tables.py` must describe
exactly the same tables and columns: names, types, nullability, lengths. A table the migrations
create without a Piccolo table (or the other way round) fails too.
"""

from __future__ import annotations

import asyncpg
import pytest
from piccolo.columns import Column, ForeignKey
from piccolo.table import Table

from server.db import all_tables

SQL_TYPES = {
    "UUID": "uuid",
    "Varchar": "character varying",
    "Text": "text",
    "Timestamptz": "timestamp with time zone",
    "Timestamp": "timestamp without time zone",
    "Date": "date",
    "Boolean": "boolean",
    "Integer": "integer",
    "BigInt": "bigint",
    "SmallInt": "smallint",
    "Serial": "integer",
    "BigSerial": "bigint",
    "Real": "real",
    "DoublePrecision": "double precision",
    "Numeric": "numeric",
    "JSONB": "jsonb",
    "JSON": "json",
    "Array": "ARRAY",
    "Bytea": "bytea",
    "Interval": "interval",
}

NOT_PICCOLO = {"migration"}
"""Tables that are not the application's: Piccolo's own bookkeeping."""


def _kind(column: Column) -> str:
    return "ForeignKey" if isinstance(column, ForeignKey) else type(column).__name__


async def _columns(database_url: str) -> dict[str, dict[str, asyncpg.Record]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            """SELECT table_name, column_name, data_type, is_nullable, character_maximum_length
               FROM information_schema.columns WHERE table_schema = 'public'"""
        )
    finally:
        await connection.close()
    tables: dict[str, dict[str, asyncpg.Record]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], {})[row["column_name"]] = row
    return tables


async def test_every_migrated_table_has_exactly_one_piccolo_table(database_url: str) -> None:
    migrated = set(await _columns(database_url)) - NOT_PICCOLO
    described = [table._meta.tablename for table in all_tables()]
    assert sorted(described) == sorted(set(described)), "two Piccolo tables for one table"
    assert set(described) == migrated


@pytest.mark.parametrize("table", all_tables(), ids=lambda t: t._meta.tablename)
async def test_the_table_matches_the_migration_column_by_column(database_url: str, table: type[Table]) -> None:
    database = (await _columns(database_url)).get(table._meta.tablename, {})
    piccolo = {column._meta.db_column_name: column for column in table._meta.columns}
    assert set(piccolo) == set(database), table._meta.tablename
    for name, column in piccolo.items():
        row = database[name]
        kind = _kind(column)
        if kind == "ForeignKey":
            target = column._foreign_key_meta.resolved_references._meta.primary_key  # type: ignore[attr-defined]
            kind = _kind(target)
        assert row["data_type"] == SQL_TYPES.get(kind, kind), f"{table._meta.tablename}.{name}: {kind}"
        assert (row["is_nullable"] == "YES") == column._meta.null, f"{table._meta.tablename}.{name} nullability"
        if kind == "Varchar":
            assert row["character_maximum_length"] == column.length, f"{table._meta.tablename}.{name} length"  # type: ignore[attr-defined]
