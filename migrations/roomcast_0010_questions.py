"""Questions, votes and mutes for the live Q&A."""

from roomcast_sql import sql_migration

ID = "2026-11-24T21:00:00:000010"
VERSION = "1.38.0"
DESCRIPTION = "questions, votes and mutes"

STATEMENTS = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """CREATE TABLE questions (
        id uuid PRIMARY KEY,
        meeting uuid NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
        author uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        text text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
        status varchar(16) NOT NULL CHECK (status IN ('pending', 'live', 'answered', 'dismissed')),
        pinned boolean NOT NULL DEFAULT false,
        votes integer NOT NULL DEFAULT 0 CHECK (votes >= 0),
        anonymous boolean NOT NULL DEFAULT false,
        answer text,
        flagged boolean NOT NULL DEFAULT false,
        flagged_words text[] NOT NULL DEFAULT '{}',
        dismiss_reason varchar(16)
            CHECK (dismiss_reason IN ('duplicate', 'off_topic', 'inappropriate', 'answered', 'other')),
        merged_into uuid REFERENCES questions(id) ON DELETE SET NULL,
        client_id varchar(100),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        answered_at timestamptz,
        CHECK (NOT pinned OR status IN ('live', 'answered'))
    )""",
    "CREATE INDEX questions_meeting ON questions (meeting, created_at)",
    "CREATE INDEX questions_author ON questions (author)",
    # at most one pinned question per meeting, as a database fact
    "CREATE UNIQUE INDEX questions_one_pinned ON questions (meeting) WHERE pinned",
    # a repeated client_id from the same user in the same meeting is the same question
    "CREATE UNIQUE INDEX questions_client_id ON questions (meeting, author, client_id) WHERE client_id IS NOT NULL",
    "CREATE INDEX questions_text_trgm ON questions USING gin (text gin_trgm_ops)",
    """CREATE TABLE votes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        question uuid NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (question, "user")
    )""",
    """CREATE TABLE mutes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        meeting uuid NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (meeting, "user")
    )""",
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
