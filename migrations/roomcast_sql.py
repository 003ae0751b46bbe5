"""Helpers shared by the migrations: each migration is plain SQL, run in the transaction Piccolo opened for it."""

from __future__ import annotations

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder


def sql_migration(migration_id: str, description: str, statements: list[str]) -> MigrationManager:
    manager = MigrationManager(migration_id=migration_id, app_name="roomcast", description=description)

    async def run() -> None:
        engine = engine_finder()
        transaction = engine.current_transaction.get()
        for statement in statements:
            # asyncpg's execute, not Piccolo's raw(): SQL text here may contain `{}` (JSON defaults)
            await transaction.connection.execute(statement)

    manager.add_raw(run)
    return manager
