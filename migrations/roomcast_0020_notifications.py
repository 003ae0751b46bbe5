"""Stored notifications, delivered live to the user's room and listed later."""

from roomcast_sql import sql_migration

ID = "2026-11-24T21:00:00:000020"
VERSION = "1.38.0"
DESCRIPTION = "notifications"

STATEMENTS = [
    """CREATE TABLE notifications (
        id uuid PRIMARY KEY,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind varchar(64) NOT NULL,
        title text NOT NULL,
        body text NOT NULL DEFAULT '',
        data jsonb NOT NULL DEFAULT '{}',
        dedupe_key varchar(200),
        created_at timestamptz NOT NULL DEFAULT now(),
        read_at timestamptz
    )""",
    'CREATE INDEX notifications_user ON notifications ("user", created_at DESC, id DESC)',
    'CREATE INDEX notifications_unread ON notifications ("user") WHERE read_at IS NULL',
    "CREATE INDEX notifications_created ON notifications (created_at)",
    # a notification that must be sent once (a reminder) names itself; a second insert is a no-op
    'CREATE UNIQUE INDEX notifications_dedupe ON notifications ("user", dedupe_key) WHERE dedupe_key IS NOT NULL',
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
