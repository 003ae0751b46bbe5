"""Account self-service: password-reset tokens, what a login's session list shows, and deletion that keeps records.

Deleting an account must leave the meetings it took part in honest: its questions stay (author
gone, as if anonymous) and its votes keep counting, so those two foreign keys stop cascading and
set the user to NULL instead. Everything else the account owned still cascades away with it.
"""

from roomcast_sql import sql_migration

ID = "2026-12-07T10:00:00:000040"
VERSION = "1.38.0"
DESCRIPTION = "password resets, login user agents, deletion keeps questions and votes"

STATEMENTS = [
    """CREATE TABLE password_reset_tokens (
        id uuid PRIMARY KEY,
        "user" uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash varchar(64) NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at timestamptz
    )""",
    'CREATE INDEX password_reset_tokens_user ON password_reset_tokens ("user")',
    "ALTER TABLE refresh_tokens ADD COLUMN user_agent varchar(300)",
    'CREATE INDEX refresh_tokens_user ON refresh_tokens ("user")',
    "ALTER TABLE questions ALTER COLUMN author DROP NOT NULL",
    "ALTER TABLE questions DROP CONSTRAINT questions_author_fkey",
    "ALTER TABLE questions ADD CONSTRAINT questions_author_fkey FOREIGN KEY (author) REFERENCES users(id) ON DELETE SET NULL",
    'ALTER TABLE votes ALTER COLUMN "user" DROP NOT NULL',
    "ALTER TABLE votes DROP CONSTRAINT votes_user_fkey",
    'ALTER TABLE votes ADD CONSTRAINT votes_user_fkey FOREIGN KEY ("user") REFERENCES users(id) ON DELETE SET NULL',
]


async def forwards():
    return sql_migration(ID, DESCRIPTION, STATEMENTS)
