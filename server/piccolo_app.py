"""The one Piccolo app, `roomcast`: migrations in the top-level `migrations/`, tables in each feature."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig, table_finder

TABLE_MODULES = [
    "server.auth.tables",
    "server.meetings.tables",
    "server.qa.tables",
    "server.notifications.tables",
    "server.polls.tables",
    "server.accounts.tables",
    "server.calendar.tables",
]
"""Every feature's `tables.py`; a new feature with tables adds its module here."""

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

APP_CONFIG = AppConfig(
    app_name="roomcast",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=table_finder(modules=TABLE_MODULES, exclude_imported=True),
    migration_dependencies=[],
    commands=[],
)
