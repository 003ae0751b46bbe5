"""Calendar sync: a user's provider connections and the events of their calendars we hold (issue 13)."""

from roomcast_sql import sql_migration

ID = "2026-12-07T10:00:00:000030"
VERSION = "1.38.0"
DESCRIPTION = "calendar connections and events"

STATEMENTS = [
    """CREATE TABLE calendar_connections (
        id uuid PRIMARY KEY,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        provider varchar(16) NOT NULL,
        account_email varchar(320) NOT NULL DEFAULT '',
        status varchar(16) NOT NULL DEFAULT 'active',
        error text,
        revoked boolean NOT NULL DEFAULT false,
        tokens text NOT NULL,
        sync_cursor text,
        channel_id varchar(200),
        channel_resource_id text,
        channel_expires_at timestamptz,
        channel_created_at timestamptz,
        last_synced_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    # reconnecting the same account updates its connection instead of adding a second one
    'CREATE UNIQUE INDEX calendar_connections_account ON calendar_connections ("user", provider, account_email)',
    "CREATE UNIQUE INDEX calendar_connections_channel ON calendar_connections (channel_id)",
    "CREATE INDEX calendar_connections_renewal ON calendar_connections (channel_expires_at)",
    """CREATE TABLE calendar_events (
        id uuid PRIMARY KEY,
        connection uuid NOT NULL REFERENCES calendar_connections(id) ON DELETE CASCADE,
        event_id varchar(1024) NOT NULL,
        title text NOT NULL DEFAULT '',
        starts_at timestamptz,
        ends_at timestamptz,
        cancelled boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE UNIQUE INDEX calendar_events_event ON calendar_events (connection, event_id)",
    "CREATE INDEX calendar_events_upcoming ON calendar_events (connection, starts_at) WHERE NOT cancelled",
    # a sync finds the meetings that follow an event by its connection and id
    """CREATE INDEX meetings_calendar_source ON meetings ((source->>'connection_id'), (source->>'calendar_event_id'))
       WHERE source IS NOT NULL""",
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
