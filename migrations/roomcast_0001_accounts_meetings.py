"""Accounts, credentials, meetings and roles."""

from roomcast_sql import sql_migration

ID = "2026-11-24T20:00:00:000001"
VERSION = "1.38.0"
DESCRIPTION = "accounts, credentials, meetings and roles"

STATEMENTS = [
    """CREATE TABLE users (
        id uuid PRIMARY KEY,
        email varchar(320) UNIQUE CHECK (email = lower(email)),
        password_hash text,
        display_name varchar(80) NOT NULL CHECK (length(display_name) > 0),
        guest_meeting_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((email IS NULL) = (guest_meeting_id IS NOT NULL))
    )""",
    """CREATE TABLE refresh_tokens (
        id uuid PRIMARY KEY,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        family_id uuid NOT NULL,
        token_hash varchar(64) NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        spent_at timestamptz,
        revoked_at timestamptz
    )""",
    "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id)",
    """CREATE TABLE api_keys (
        id uuid PRIMARY KEY,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name varchar(100) NOT NULL,
        key_hash varchar(64) NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz
    )""",
    'CREATE INDEX api_keys_user ON api_keys ("user")',
    """CREATE TABLE meetings (
        id uuid PRIMARY KEY,
        owner uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title varchar(200) NOT NULL,
        description text NOT NULL DEFAULT '',
        starts_at timestamptz,
        ends_at timestamptz,
        status varchar(16) NOT NULL DEFAULT 'scheduled'
            CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled')),
        join_code varchar(8) NOT NULL UNIQUE,
        settings jsonb NOT NULL DEFAULT '{}',
        source jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at)
    )""",
    "CREATE INDEX meetings_owner ON meetings (owner, created_at, id)",
    """ALTER TABLE users ADD CONSTRAINT users_guest_meeting
        FOREIGN KEY (guest_meeting_id) REFERENCES meetings(id) ON DELETE CASCADE""",
    """CREATE TABLE meeting_members (
        id uuid PRIMARY KEY,
        meeting uuid NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        role varchar(16) NOT NULL CHECK (role IN ('presenter', 'participant')),
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (meeting, "user")
    )""",
    'CREATE INDEX meeting_members_user ON meeting_members ("user", role)',
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
