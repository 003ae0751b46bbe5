"""Account self-service rules: profile, password change, logins (sessions) and deleting an account.

Every input is untrusted: it arrives from `server.accounts.routes` after a strict schema check.
A password the caller must confirm (changing the email or the password, deleting the account) is
checked like a login: a wrong one is 401 and counts against the email's failed-login limit, so a
stolen access token cannot be used to guess the password.

Revoking a login marks its refresh-token family revoked (its access tokens die with it, docs/api.md
"Credentials"), then, after the commit, its sockets are closed with 4401 (`server.accounts.sockets`).

Deleting an account keeps the meetings it took part in honest: its questions stay, with no
author and marked anonymous, its votes keep counting (the rows lose their user), and meetings it
owned are deleted with everything in them. Its notifications, API keys, logins, memberships and
reset links go with the `users` row.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from channels.protocol import FrameError
from server import cache
from server.accounts.resets import revoke_logins, spend_reset_links
from server.accounts.schemas import LoginSession, PasswordChange, ProfilePatch
from server.accounts.sockets import end_sockets
from server.auth import limits
from server.auth.identity import Principal
from server.auth.passwords import hash_password, verify_password
from server.auth.schemas import Session, User
from server.auth.service import USER_COLUMNS, check_password_rule, display_name, normalise_email, start_session, user_of
from server.errors import conflict, not_found, unauthorized
from server.meetings.events import close_meeting_rooms
from server.qa.publish import publish_changes
from server.qa.service import QUESTION_COLUMNS, Change, fetch_question, in_order
from server.services import Services

log = logging.getLogger("roomcast.accounts")

SESSIONS_SQL = """
SELECT family_id AS id, min(created_at) AS created_at, max(created_at) AS last_used_at,
       (array_agg(user_agent ORDER BY created_at DESC))[1] AS user_agent
FROM refresh_tokens WHERE "user" = $1
GROUP BY family_id
HAVING bool_or(spent_at IS NULL AND expires_at > now()) AND NOT bool_or(revoked_at IS NOT NULL)
ORDER BY max(created_at) DESC, family_id
"""
"""The user's live logins: a family with an unspent, unexpired refresh token, never revoked."""


async def _checked_password(services: Services, user_id: uuid.UUID, password: str, address: str) -> asyncpg.Record:
    """The user's row if `password` is theirs; 401 if not (counted like a failed login), 429 past that limit."""
    async with services.db.pool.acquire() as connection:
        row = await connection.fetchrow(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = $1", user_id)
    if row is None:
        raise unauthorized()
    await limits.reserve_login(services, row["email"], address)
    if not await verify_password(row["password_hash"], password):
        log.info("accounts.password_refused", extra={"user_id": str(user_id), "client": address})
        raise unauthorized("the current password is wrong")
    await limits.login_succeeded(services, row["email"], address)
    return row


async def update_profile(services: Services, principal: Principal, patch: ProfilePatch, address: str) -> User:
    """Change the display name and/or the email (which needs the current password; 409 if taken)."""
    name = display_name(patch.display_name) if isinstance(patch.display_name, str) else None
    email = normalise_email(patch.email) if isinstance(patch.email, str) else None
    user_id = principal.user_id
    if email is not None:
        async with services.db.pool.acquire() as connection:
            current = await connection.fetchval("SELECT email FROM users WHERE id = $1", user_id)
        if current == email:
            email = None
        elif not isinstance(patch.current_password, str):
            raise unauthorized("changing the email needs current_password")
        else:
            await _checked_password(services, user_id, patch.current_password, address)
    async with services.db.pool.acquire() as connection, connection.transaction():
        try:
            row = await connection.fetchrow(
                f"UPDATE users SET display_name = coalesce($2, display_name), email = coalesce($3, email) "
                f"WHERE id = $1 RETURNING {USER_COLUMNS}",
                user_id,
                name,
                email,
            )
        except asyncpg.UniqueViolationError:
            raise conflict("an account with this email already exists") from None
        if row is None:
            raise unauthorized()
        if email is not None:  # links mailed to the old address must not take over the account
            await spend_reset_links(connection, user_id)
    await cache.invalidate(services, cache.user_scope(user_id))  # the display name in cached socket identities
    log.info("accounts.profile_updated", extra={"user_id": str(user_id), "email_changed": email is not None})
    return user_of(row)


async def change_password(
    services: Services, principal: Principal, body: PasswordChange, address: str, user_agent: str | None
) -> Session:
    """Set a new password; every other login is revoked; the caller's login goes on with a new session."""
    check_password_rule(body.new_password, "new_password")
    user = await _checked_password(services, principal.user_id, body.current_password, address)
    password_hash = await hash_password(body.new_password)
    family = principal.family_id
    async with services.db.pool.acquire() as connection, connection.transaction():
        await connection.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user["id"], password_hash)
        await spend_reset_links(connection, user["id"])
        revoked = await revoke_logins(connection, user["id"], except_family=family)
        if family is None:  # an API key: the caller gets a new login
            session = await start_session(services, connection, user, user_agent=user_agent)
        else:  # the caller's own login carries on: its refresh token rotates
            await connection.execute(
                "UPDATE refresh_tokens SET spent_at = now() WHERE family_id = $1 AND spent_at IS NULL", family
            )
            session = await _continue_login(services, connection, user, family, user_agent)
    await end_sockets(services, user_id=user["id"], family_ids=revoked)
    log.info("accounts.password_changed", extra={"user_id": str(user["id"]), "logins_revoked": len(revoked)})
    return session


async def _continue_login(
    services: Services, connection: asyncpg.Connection, user: asyncpg.Record, family: uuid.UUID, user_agent: str | None
) -> Session:
    """The next session of the caller's login, keeping the user agent it started with."""
    known = await connection.fetchval(
        "SELECT user_agent FROM refresh_tokens WHERE family_id = $1 ORDER BY created_at DESC LIMIT 1", family
    )
    return await start_session(services, connection, user, family, user_agent=known or user_agent)


async def list_sessions(services: Services, principal: Principal) -> list[LoginSession]:
    async with services.db.pool.acquire() as connection:
        rows = await connection.fetch(SESSIONS_SQL, principal.user_id)
    return [login_session(row, principal.family_id) for row in rows]


def login_session(row: Any, current_family: uuid.UUID | None) -> LoginSession:
    return LoginSession(
        id=row["id"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        user_agent=row["user_agent"],
        current=row["id"] == current_family,
    )


async def revoke_session(services: Services, principal: Principal, family_id: uuid.UUID) -> None:
    """End one of the caller's logins (404 if it is not one of theirs, or already ended)."""
    async with services.db.pool.acquire() as connection:
        revoked = await connection.fetchval(
            """UPDATE refresh_tokens SET revoked_at = now()
               WHERE family_id = $1 AND "user" = $2 AND revoked_at IS NULL
                 AND EXISTS (SELECT 1 FROM refresh_tokens l
                             WHERE l.family_id = $1 AND l.spent_at IS NULL AND l.expires_at > now())
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = $1 AND r.revoked_at IS NOT NULL)
               RETURNING true""",
            family_id,
            principal.user_id,
        )
    if not revoked:
        raise not_found("no such session")
    await end_sockets(services, user_id=principal.user_id, family_ids=[family_id])
    log.info("accounts.session_revoked", extra={"user_id": str(principal.user_id), "family_id": str(family_id)})


async def delete_account(services: Services, principal: Principal, password: str, address: str) -> None:
    """Delete the caller's account after checking their password (see the module docstring for what stays)."""
    user = await _checked_password(services, principal.user_id, password, address)
    user_id = user["id"]
    async with services.db.pool.acquire() as connection, connection.transaction():
        owned = [
            r["id"] for r in await connection.fetch("SELECT id FROM meetings WHERE owner = $1 FOR UPDATE", user_id)
        ]
        touched = await connection.fetch(
            """SELECT meeting FROM questions WHERE author = $1
               UNION SELECT q.meeting FROM votes v JOIN questions q ON q.id = v.question WHERE v."user" = $1
               UNION SELECT meeting FROM meeting_members WHERE "user" = $1""",
            user_id,
        )
        asked = await connection.fetch(
            f"SELECT {QUESTION_COLUMNS} FROM questions q LEFT JOIN users u ON u.id = q.author "
            "WHERE q.author = $1 AND q.meeting <> ALL($2::uuid[])",
            user_id,
            owned,
        )
        await connection.execute("UPDATE questions SET anonymous = true WHERE author = $1", user_id)
        await connection.execute("DELETE FROM meetings WHERE owner = $1", user_id)
        await connection.execute("DELETE FROM users WHERE id = $1", user_id)
    meetings = {*owned, *(r["meeting"] for r in touched)}
    await cache.invalidate(services, cache.user_scope(user_id), *(cache.meeting_scope(m) for m in meetings))
    await end_sockets(services, user_id=user_id, family_ids=None)
    for meeting_id in owned:
        await close_meeting_rooms(services, meeting_id)
    await _show_authors_gone(services, [dict(row) for row in asked])
    log.info("accounts.deleted", extra={"user_id": str(user_id), "meetings_deleted": len(owned)})


async def _show_authors_gone(services: Services, questions: list[dict[str, Any]]) -> None:
    """Send `question.updated` (now without author) for the deleted person's questions; never raises.

    Each meeting's changes are published under its Q&A lock, like a moderation, so they reach
    clients in commit order; pages open in those meetings stop naming the person at once.
    """
    by_meeting: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for question in questions:
        by_meeting.setdefault(question["meeting"], []).append(question)
    for meeting_id, befores in by_meeting.items():
        try:
            async with in_order(services.db.pool, meeting_id) as connection:
                changes = []
                for before in befores:
                    try:
                        changes.append(Change(before, await fetch_question(connection, meeting_id, before["id"])))
                    except FrameError:  # deleted meanwhile
                        continue
                await publish_changes(services.broker, changes)
        except Exception:
            log.exception("accounts.publish_failed", extra={"meeting_id": str(meeting_id), "questions": len(befores)})
