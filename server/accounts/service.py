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
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from piccolo.columns import Column

from channels.protocol import FrameError
from server import cache
from server.accounts.resets import revoke_logins, spend_reset_links
from server.accounts.schemas import LoginSession, PasswordChange, ProfilePatch
from server.accounts.sockets import end_sockets
from server.auth import limits
from server.auth.identity import Principal
from server.auth.passwords import hash_password, verify_password
from server.auth.schemas import Session, User
from server.auth.service import USER_FIELDS, check_password_rule, display_name, normalise_email, start_session, user_of
from server.auth.tables import RefreshToken
from server.auth.tables import User as UserTable
from server.errors import conflict, not_found, unauthorized
from server.meetings.events import close_meeting_rooms
from server.meetings.tables import Meeting, MeetingMember
from server.qa.publish import publish_changes
from server.qa.service import QUESTION_FIELDS, Change, fetch_question, in_order
from server.qa.tables import Question, Vote
from server.services import Services

log = logging.getLogger("roomcast.accounts")

SESSIONS_SQL = """
SELECT family_id AS id, min(created_at) AS created_at, max(created_at) AS last_used_at,
       (array_agg(user_agent ORDER BY created_at DESC))[1] AS user_agent
FROM refresh_tokens WHERE "user" = {}
GROUP BY family_id
HAVING bool_or(spent_at IS NULL AND expires_at > now()) AND NOT bool_or(revoked_at IS NOT NULL)
ORDER BY max(created_at) DESC, family_id
"""
"""The user's live logins: a family with an unspent, unexpired refresh token, never revoked.

Kept in SQL (run with `RefreshToken.raw`): Piccolo has no HAVING, `bool_or` or ordered `array_agg`,
and without them the whole history of the user's refresh tokens would be read to answer it.
"""


async def live_logins(user_id: uuid.UUID) -> list[dict[str, Any]]:
    """`SESSIONS_SQL` for one user (in the caller's transaction, if one is open)."""
    rows: list[dict[str, Any]] = await RefreshToken.raw(SESSIONS_SQL, user_id)
    return rows


async def _checked_password(services: Services, user_id: uuid.UUID, password: str, address: str) -> dict[str, Any]:
    """The user's row if `password` is theirs; 401 if not (counted like a failed login), 429 past that limit."""
    row = await UserTable.select(*USER_FIELDS, UserTable.password_hash).where(UserTable.id == user_id).first()
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
        current = await UserTable.select(UserTable.email).where(UserTable.id == user_id).first()
        if current is not None and current["email"] == email:
            email = None
        elif not isinstance(patch.current_password, str):
            raise unauthorized("changing the email needs current_password")
        else:
            await _checked_password(services, user_id, patch.current_password, address)
    given: dict[Column, str | None] = {UserTable.display_name: name, UserTable.email: email}
    changes: dict[Column | str, Any] = {column: value for column, value in given.items() if value is not None}
    async with services.db.transaction():
        try:
            rows = await (
                UserTable.update(changes).where(UserTable.id == user_id).returning(*USER_FIELDS)
                if changes
                else UserTable.select(*USER_FIELDS).where(UserTable.id == user_id)
            )
        except asyncpg.UniqueViolationError:
            raise conflict("an account with this email already exists") from None
        if not rows:
            raise unauthorized()
        if email is not None:  # links mailed to the old address must not take over the account
            await spend_reset_links(user_id)
    await cache.invalidate(services, cache.user_scope(user_id))  # the display name in cached socket identities
    log.info("accounts.profile_updated", extra={"user_id": str(user_id), "email_changed": email is not None})
    return user_of(rows[0])


async def change_password(
    services: Services, principal: Principal, body: PasswordChange, address: str, user_agent: str | None
) -> Session:
    """Set a new password; every other login is revoked; the caller's login goes on with a new session."""
    check_password_rule(body.new_password, "new_password")
    user = await _checked_password(services, principal.user_id, body.current_password, address)
    password_hash = await hash_password(body.new_password)
    family = principal.family_id
    async with services.db.transaction():
        await UserTable.update({UserTable.password_hash: password_hash}).where(UserTable.id == user["id"])
        await spend_reset_links(user["id"])
        revoked = await revoke_logins(user["id"], except_family=family)
        if family is None:  # an API key: the caller gets a new login
            session = await start_session(services, user, user_agent=user_agent)
        else:  # the caller's own login carries on: its refresh token rotates
            await RefreshToken.update({RefreshToken.spent_at: datetime.now(UTC)}).where(
                (RefreshToken.family_id == family) & RefreshToken.spent_at.is_null()
            )
            session = await _continue_login(services, user, family, user_agent)
    await end_sockets(services, user_id=user["id"], family_ids=revoked)
    log.info("accounts.password_changed", extra={"user_id": str(user["id"]), "logins_revoked": len(revoked)})
    return session


async def _continue_login(
    services: Services, user: Mapping[str, Any], family: uuid.UUID, user_agent: str | None
) -> Session:
    """The next session of the caller's login, keeping the user agent it started with."""
    latest = await (
        RefreshToken.select(RefreshToken.user_agent)
        .where(RefreshToken.family_id == family)
        .order_by(RefreshToken.created_at, ascending=False)
        .first()
    )
    known = latest["user_agent"] if latest is not None else None
    return await start_session(services, user, family, user_agent=known or user_agent)


async def list_sessions(services: Services, principal: Principal) -> list[LoginSession]:
    return [login_session(row, principal.family_id) for row in await live_logins(principal.user_id)]


def login_session(row: Mapping[str, Any], current_family: uuid.UUID | None) -> LoginSession:
    return LoginSession(
        id=row["id"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        user_agent=row["user_agent"],
        current=row["id"] == current_family,
    )


async def revoke_session(services: Services, principal: Principal, family_id: uuid.UUID) -> None:
    """End one of the caller's logins (404 if it is not one of theirs, or already ended)."""
    now = datetime.now(UTC)
    async with services.db.transaction():
        tokens = await (
            RefreshToken.select(RefreshToken.spent_at, RefreshToken.expires_at, RefreshToken.revoked_at)
            .where((RefreshToken.family_id == family_id) & (RefreshToken.user == principal.user_id))
            .lock_rows()
        )
        live = any(t["spent_at"] is None and t["expires_at"] > now for t in tokens)
        ended = any(t["revoked_at"] is not None for t in tokens)
        if live and not ended:
            await RefreshToken.update({RefreshToken.revoked_at: now}).where(RefreshToken.family_id == family_id)
    if not live or ended:
        raise not_found("no such session")
    await end_sockets(services, user_id=principal.user_id, family_ids=[family_id])
    log.info("accounts.session_revoked", extra={"user_id": str(principal.user_id), "family_id": str(family_id)})


async def delete_account(services: Services, principal: Principal, password: str, address: str) -> None:
    """Delete the caller's account after checking their password (see the module docstring for what stays)."""
    user = await _checked_password(services, principal.user_id, password, address)
    user_id = user["id"]
    async with services.db.transaction():
        owned = await Meeting.select(Meeting.id).where(Meeting.owner == user_id).lock_rows().output(as_list=True)
        touched = await _meetings_with_traces(user_id)
        asked = Question.select(*QUESTION_FIELDS).where(Question.author == user_id)
        if owned:  # their questions in meetings they own go with those meetings
            asked = asked.where(Question.meeting.not_in(owned))
        questions = await asked
        await Question.update({Question.anonymous: True}).where(Question.author == user_id)
        await Meeting.delete().where(Meeting.owner == user_id)
        await UserTable.delete().where(UserTable.id == user_id)
    meetings = {*owned, *touched}
    await cache.invalidate(services, cache.user_scope(user_id), *(cache.meeting_scope(m) for m in meetings))
    await end_sockets(services, user_id=user_id, family_ids=None)
    for meeting_id in owned:
        await close_meeting_rooms(services, meeting_id)
    await _show_authors_gone(services, questions)
    log.info("accounts.deleted", extra={"user_id": str(user_id), "meetings_deleted": len(owned)})


async def _meetings_with_traces(user_id: uuid.UUID) -> set[uuid.UUID]:
    """The meetings where the user asked, voted or has a role (their cached roles and views change)."""
    found: set[uuid.UUID] = set()
    for query in (
        Question.select(Question.meeting).where(Question.author == user_id),
        Vote.select(Vote.question._.meeting).where(Vote.user == user_id),
        MeetingMember.select(MeetingMember.meeting).where(MeetingMember.user == user_id),
    ):
        found.update(await query.distinct().output(as_list=True))
    return found


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
