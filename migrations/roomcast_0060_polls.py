"""Live polls and their answers (SPEC section 4, "Polls and reactions"). Reactions are not stored."""

from roomcast_sql import sql_migration

ID = "2026-12-07T10:00:00:000060"
VERSION = "1.38.0"
DESCRIPTION = "polls and poll responses"

STATEMENTS = [
    """CREATE TABLE polls (
        id uuid PRIMARY KEY,
        meeting uuid NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
        kind varchar(16) NOT NULL CHECK (kind IN ('choice', 'rating', 'word_cloud')),
        title varchar(200) NOT NULL CHECK (length(title) > 0),
        options jsonb NOT NULL DEFAULT '[]',
        multiple boolean NOT NULL DEFAULT false,
        scale_max integer NOT NULL DEFAULT 5 CHECK (scale_max BETWEEN 2 AND 10),
        anonymous boolean NOT NULL DEFAULT true,
        show_results varchar(16) NOT NULL DEFAULT 'live' CHECK (show_results IN ('live', 'closed', 'never')),
        status varchar(16) NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'closed')),
        position integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        opened_at timestamptz,
        closed_at timestamptz,
        CHECK (status = 'draft' OR opened_at IS NOT NULL)
    )""",
    "CREATE INDEX polls_meeting ON polls (meeting, position)",
    # at most one open poll per meeting, as a database fact (opening one closes the other)
    "CREATE UNIQUE INDEX polls_one_open ON polls (meeting) WHERE status = 'open'",
    # one answer per user per poll; a deleted account's answers keep counting ("user" becomes NULL)
    """CREATE TABLE poll_responses (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        poll uuid NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
        "user" uuid REFERENCES users(id) ON DELETE SET NULL,
        option_ids text[] NOT NULL DEFAULT '{}',
        value integer,
        words text[] NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (poll, "user")
    )""",
    'CREATE INDEX poll_responses_user ON poll_responses ("user")',
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
