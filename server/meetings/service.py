"""Meetings: the rules and persistence behind REST setup, shared with the realtime side and the seed command.

Every function that changes a meeting does it in one transaction and tells the realtime side
(`server.meetings.events`) only after that transaction has committed. Inputs are untrusted:
they have passed the strict schema check of `server.rest.decode`, not yet the rules here.

Choices the contract leaves open (also in docs/api.md):
- Status moves `scheduled` -> `live` -> `ended`, and any status -> `cancelled`; asking for the
  current status again is a no-op. Anything else is 409.
- A PATCH of `settings` changes only the settings fields it names.
- Lists are newest first (`created_at`, then `id`), with an opaque cursor.
- Removing a presenter removes them from the meeting entirely (they may join again by code as
  a participant); their sockets in the meeting's rooms are closed with 4403.
"""

from __future__ import annotations

import base64
import binascii
import logging
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import msgspec

from server import cache
from server.auth.identity import Principal
from server.auth.passwords import hash_password
from server.auth.service import display_name, normalise_email
from server.auth.tokens import issue_guest_token
from server.errors import bad_request, conflict, forbidden, not_found
from server.meetings.codes import ALPHABET, LENGTH, new_join_code, normalise_join_code
from server.meetings.events import close_meeting_rooms, publish_meeting_updated, remove_from_rooms
from server.meetings.schemas import (
    Joined,
    JoinIn,
    Meeting,
    MeetingCreate,
    MeetingPage,
    MeetingPatch,
    MeetingSettings,
    MeetingSource,
    Presenter,
    PresenterItem,
    PresenterList,
    SettingsPatch,
    SourceEvent,
    Status,
)
from server.notifications import triggers
from server.rest import clean_text, invalid
from server.services import Services

log = logging.getLogger("roomcast.meetings")

JOIN_CODE_ATTEMPTS = 10
MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
DEFAULT_PAGE = 50

MEETING_COLUMNS = "id, title, description, starts_at, ends_at, status, join_code, settings, owner, created_at, source"

TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"live", "cancelled"}),
    "live": frozenset({"ended", "cancelled"}),
    "ended": frozenset({"cancelled"}),
    "cancelled": frozenset(),
}
"""Status -> the statuses a PATCH may move it to."""

CLOSED: frozenset[str] = frozenset({"ended", "cancelled"})
"""Nobody may join a meeting in these statuses."""


# --- reading -------------------------------------------------------------------------------


def _json(raw: Any) -> Any:
    """A jsonb column as Python values, whether the driver handed over text or decoded JSON."""
    if isinstance(raw, str | bytes):
        return msgspec.json.decode(raw)
    return raw


def stored_settings(raw: Any) -> MeetingSettings:
    """The stored settings with the documented defaults for anything missing (unknown keys ignored)."""
    value = _json(raw)
    if not isinstance(value, dict):
        return MeetingSettings()
    try:
        return msgspec.convert(value, MeetingSettings)
    except msgspec.ValidationError:
        log.warning("meetings.bad_stored_settings", extra={"settings": str(value)[:200]})
        return MeetingSettings()


def meeting_of(row: asyncpg.Record) -> Meeting:
    """A `meetings` row (selected with `MEETING_COLUMNS`) as the documented `Meeting`."""
    source: MeetingSource | None = None
    if (raw_source := _json(row["source"])) is not None:
        try:
            source = msgspec.convert(raw_source, MeetingSource, strict=False)
        except msgspec.ValidationError:
            log.warning("meetings.bad_stored_source", extra={"meeting_id": str(row["id"])})
    status: Status = row["status"]
    return Meeting(
        id=row["id"],
        title=row["title"],
        description=row["description"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        status=status,
        join_code=row["join_code"],
        settings=stored_settings(row["settings"]),
        owner_id=row["owner"],
        created_at=row["created_at"],
        source=source,
    )


async def load_meeting(services: Services, meeting_id: uuid.UUID) -> Meeting | None:
    """The meeting as docs/api.md shapes it, or None (for snapshots and anyone else who needs one)."""
    async with services.db.pool.acquire() as connection:
        row = await connection.fetchrow(f"SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1", meeting_id)
    return None if row is None else meeting_of(row)


async def get_meeting(services: Services, meeting_id: uuid.UUID) -> Meeting:
    meeting = await load_meeting(services, meeting_id)
    if meeting is None:
        raise not_found("no such meeting")
    return meeting


def _encode_cursor(created_at: datetime, meeting_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([created_at, meeting_id])).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=tuple[Annotated[datetime, msgspec.Meta(tz=True)], uuid.UUID])
    except (binascii.Error, ValueError, msgspec.DecodeError):  # msgspec's errors are ValueErrors too
        raise bad_request("the cursor is malformed; pass next_cursor from the previous page unchanged") from None


async def list_meetings(services: Services, user_id: uuid.UUID, limit: int, cursor: str | None) -> MeetingPage:
    """The meetings `user_id` owns or presents, newest first, `limit` per page."""
    after: tuple[datetime | None, uuid.UUID | None] = _decode_cursor(cursor) if cursor else (None, None)
    async with services.db.pool.acquire() as connection:
        rows = await connection.fetch(
            f"""SELECT {MEETING_COLUMNS} FROM meetings
                WHERE (owner = $1 OR id IN (
                        SELECT meeting FROM meeting_members WHERE "user" = $1 AND role = 'presenter'))
                  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
                ORDER BY created_at DESC, id DESC
                LIMIT $4""",
            user_id,
            after[0],
            after[1],
            limit + 1,
        )
    items = [meeting_of(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return MeetingPage(items=items, next_cursor=next_cursor)


# --- writing -------------------------------------------------------------------------------


def _title(raw: str) -> str:
    return clean_text(raw, "title", max_length=MAX_TITLE)


def _event_title(raw: str) -> str:
    """A calendar event's title as a meeting title: one line, control characters dropped, at most MAX_TITLE."""
    text = " ".join("".join(c for c in raw if unicodedata.category(c) != "Cc" or c in "\t\n").split())
    if len(text) > MAX_TITLE:
        text = text[: MAX_TITLE - 1] + "…"
    return text or "(untitled event)"


def _description(raw: str | None) -> str:
    if raw is None:
        return ""
    return clean_text(raw, "description", max_length=MAX_DESCRIPTION, min_length=0, multiline=True)


def _checked_settings(settings: MeetingSettings) -> MeetingSettings:
    """`settings` with blocked words trimmed; 422 for one that is empty or too long once trimmed."""
    words = []
    for index, word in enumerate(settings.blocked_words):
        words.append(clean_text(word, f"settings.blocked_words[{index}]", max_length=50))
    return MeetingSettings(
        moderation=settings.moderation,
        anonymous_questions=settings.anonymous_questions,
        max_question_length=settings.max_question_length,
        blocked_words=words,
    )


def _check_times(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at < starts_at:
        raise invalid("ends_at", "ends_at is before starts_at")


def _utc(value: datetime | None, field: str) -> datetime | None:
    """`value` in UTC; a time without a zone is taken to be UTC already (docs/api.md: times are UTC).

    `9999-12-31T23:59:59-14:00` is valid ISO 8601 but its UTC value is in year 10000, which
    Python cannot represent: a 422 naming the field, not an OverflowError (a 500).
    """
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise invalid(field, f"{field} in UTC falls outside the years 1 to 9999") from None


async def insert_meeting(
    connection: asyncpg.Connection,
    *,
    owner_id: uuid.UUID,
    title: str,
    description: str = "",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    status: Status = "scheduled",
    settings: MeetingSettings | None = None,
    source: MeetingSource | None = None,
) -> Meeting:
    """Insert a meeting with a fresh unique join code, retrying on the rare collision.

    Values must already be valid. Each attempt runs in its own savepoint, so a collision does not
    abort a transaction the caller has open.
    """
    settings_json = msgspec.json.encode(settings or MeetingSettings()).decode()
    source_json = None if source is None else msgspec.json.encode(source).decode()
    for _ in range(JOIN_CODE_ATTEMPTS):
        try:
            async with connection.transaction():
                row = await connection.fetchrow(
                    f"""INSERT INTO meetings
                        (id, owner, title, description, starts_at, ends_at, status, join_code, settings, source)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)
                        RETURNING {MEETING_COLUMNS}""",
                    uuid.uuid4(),
                    owner_id,
                    title,
                    description,
                    starts_at,
                    ends_at,
                    status,
                    new_join_code(),
                    settings_json,
                    source_json,
                )
        except asyncpg.UniqueViolationError as err:
            if "join_code" not in (err.constraint_name or str(err)):
                raise
            continue
        return meeting_of(row)
    raise RuntimeError("could not find a free join code")


async def create_meeting(
    services: Services, owner_id: uuid.UUID, body: MeetingCreate, event: SourceEvent | None = None
) -> Meeting:
    """A new `scheduled` meeting owned by `owner_id`, settings defaulted as docs/api.md says.

    With `event` (the calendar event `body.source` names, read by the caller) the title and times
    come from it unless the body gives them, and the meeting records its source.
    """
    if body.title is not msgspec.UNSET:
        title = _title(body.title)
    elif event is not None:
        title = _event_title(event.title)
    else:
        raise invalid("title", "title is required (or a calendar source to take it from)")
    description = _description(body.description)
    starts_at, ends_at = _utc(body.starts_at, "starts_at"), _utc(body.ends_at, "ends_at")
    source = None
    if event is not None and body.source is not None:
        if body.starts_at is None and body.ends_at is None:
            starts_at, ends_at = event.starts_at, event.ends_at
        elif body.starts_at is None:
            starts_at = event.starts_at if event.starts_at and ends_at and event.starts_at <= ends_at else None
        elif body.ends_at is None:
            ends_at = event.ends_at if event.ends_at and starts_at and event.ends_at >= starts_at else None
        source = MeetingSource(
            provider=event.provider,
            calendar_event_id=body.source.calendar_event_id,
            connection_id=body.source.connection_id,
        )
    _check_times(starts_at, ends_at)
    settings = _checked_settings(body.settings or MeetingSettings())
    async with services.db.pool.acquire() as connection:
        meeting = await insert_meeting(
            connection,
            owner_id=owner_id,
            title=title,
            description=description,
            starts_at=starts_at,
            ends_at=ends_at,
            settings=settings,
            source=source,
        )
    log.info("meetings.created", extra={"meeting_id": str(meeting.id), "owner_id": str(owner_id)})
    return meeting


def _merged_settings(current: MeetingSettings, patch: SettingsPatch) -> MeetingSettings:
    changes = {
        field: value
        for field in SettingsPatch.__struct_fields__
        if (value := getattr(patch, field)) is not msgspec.UNSET
    }
    return _checked_settings(msgspec.structs.replace(current, **changes))


async def update_meeting(services: Services, meeting_id: uuid.UUID, patch: MeetingPatch) -> Meeting:
    """Apply the fields `patch` names; publish `meeting.updated` once committed if anything changed."""
    async with services.db.pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(f"SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1 FOR UPDATE", meeting_id)
        if row is None:
            raise not_found("no such meeting")
        current = meeting_of(row)
        title = current.title if patch.title is msgspec.UNSET else _title(patch.title)
        description = current.description if patch.description is msgspec.UNSET else _description(patch.description)
        starts_at = current.starts_at if patch.starts_at is msgspec.UNSET else _utc(patch.starts_at, "starts_at")
        ends_at = current.ends_at if patch.ends_at is msgspec.UNSET else _utc(patch.ends_at, "ends_at")
        _check_times(starts_at, ends_at)
        settings = current.settings
        if patch.settings is not msgspec.UNSET:
            settings = _merged_settings(current.settings, patch.settings)
        status = current.status if patch.status is msgspec.UNSET else patch.status
        if status != current.status and status not in TRANSITIONS[current.status]:
            raise conflict(f"a {current.status} meeting cannot become {status}")
        updated = msgspec.structs.replace(
            current,
            title=title,
            description=description,
            starts_at=starts_at,
            ends_at=ends_at,
            settings=settings,
            status=status,
        )
        if updated == current:
            return current
        row = await connection.fetchrow(
            f"""UPDATE meetings SET title = $2, description = $3, starts_at = $4, ends_at = $5, status = $6,
                    settings = $7::jsonb, updated_at = now()
                WHERE id = $1 RETURNING {MEETING_COLUMNS}""",
            meeting_id,
            title,
            description,
            starts_at,
            ends_at,
            status,
            msgspec.json.encode(settings).decode(),
        )
    meeting = meeting_of(row)
    log.info(
        "meetings.updated",
        extra={"meeting_id": str(meeting_id), "status": meeting.status, "previous_status": current.status},
    )
    await publish_meeting_updated(services, meeting)
    return meeting


async def delete_meeting(services: Services, meeting_id: uuid.UUID) -> None:
    """Delete the meeting with its members, guests and questions; then close everyone's sockets in its rooms."""
    async with services.db.pool.acquire() as connection:
        deleted = await connection.fetchval("DELETE FROM meetings WHERE id = $1 RETURNING id", meeting_id)
    if deleted is None:
        raise not_found("no such meeting")
    await cache.invalidate(services, cache.meeting_scope(meeting_id))
    log.info("meetings.deleted", extra={"meeting_id": str(meeting_id)})
    await close_meeting_rooms(services, meeting_id)


async def add_presenter(services: Services, meeting_id: uuid.UUID, email: str) -> Presenter:
    """Make the account with `email` a presenter (also when it was a participant); idempotent."""
    email = normalise_email(email)
    async with services.db.pool.acquire() as connection, connection.transaction():
        user_id = await connection.fetchval("SELECT id FROM users WHERE email = $1", email)
        if user_id is None:
            raise not_found("no user with this email")
        owner = await connection.fetchval("SELECT owner FROM meetings WHERE id = $1 FOR UPDATE", meeting_id)
        if owner is None:
            raise not_found("no such meeting")
        if owner == user_id:
            raise conflict("the owner already runs this meeting")
        promoted = await connection.fetchval(
            """INSERT INTO meeting_members (id, meeting, "user", role) VALUES ($1, $2, $3, 'presenter')
               ON CONFLICT (meeting, "user") DO UPDATE SET role = 'presenter'
               WHERE meeting_members.role <> 'presenter'
               RETURNING true""",
            uuid.uuid4(),
            meeting_id,
            user_id,
        )
    log.info("meetings.presenter_added", extra={"meeting_id": str(meeting_id), "user_id": str(user_id)})
    if promoted:
        await cache.invalidate(services, cache.meeting_scope(meeting_id))
        await triggers.presenter_added(services, meeting_id, user_id)
    return Presenter(user_id=user_id, role="presenter")


async def list_presenters(services: Services, meeting_id: uuid.UUID) -> PresenterList:
    """The meeting's presenters, oldest first (the owner is not one)."""
    async with services.db.pool.acquire() as connection:
        rows = await connection.fetch(
            """SELECT u.id, u.email, u.display_name FROM meeting_members m JOIN users u ON u.id = m."user"
               WHERE m.meeting = $1 AND m.role = 'presenter' ORDER BY m.created_at, u.id""",
            meeting_id,
        )
    return PresenterList(
        items=[PresenterItem(user_id=r["id"], email=r["email"], display_name=r["display_name"]) for r in rows]
    )


async def remove_presenter(services: Services, meeting_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Remove a presenter from the meeting (404 if they are not one) and close their sockets in its rooms."""
    async with services.db.pool.acquire() as connection:
        removed = await connection.fetchval(
            """DELETE FROM meeting_members WHERE meeting = $1 AND "user" = $2 AND role = 'presenter'
               RETURNING id""",
            meeting_id,
            user_id,
        )
    if removed is None:
        raise not_found("this user is not a presenter of the meeting")
    await cache.invalidate(services, cache.meeting_scope(meeting_id))
    log.info("meetings.presenter_removed", extra={"meeting_id": str(meeting_id), "user_id": str(user_id)})
    await remove_from_rooms(services, meeting_id, [user_id])


async def join(services: Services, body: JoinIn, principal: Principal | None) -> Joined:
    """Join by code: a user becomes a participant (no token); without credentials a guest is created.

    A guest token is good for its own meeting only: presenting it to join another is 403.
    """
    guest_name = display_name(body.display_name or "") if principal is None else None
    code = normalise_join_code(body.join_code)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        raise not_found("no meeting has this join code")
    async with services.db.pool.acquire() as connection, connection.transaction():
        meeting = await connection.fetchrow("SELECT id, owner, status FROM meetings WHERE join_code = $1", code)
        if meeting is None:
            raise not_found("no meeting has this join code")
        meeting_id: uuid.UUID = meeting["id"]
        if meeting["status"] in CLOSED:
            raise conflict(f"the meeting is {meeting['status']}")
        if principal is None:
            assert guest_name is not None
            guest_id = uuid.uuid4()
            await connection.execute(
                "INSERT INTO users (id, display_name, guest_meeting_id) VALUES ($1, $2, $3)",
                guest_id,
                guest_name,
                meeting_id,
            )
        elif principal.guest:
            if principal.guest_meeting_id != meeting_id:
                raise forbidden("a guest token is valid only for its own meeting; join without it")
            return Joined(meeting_id=meeting_id)
        else:
            if meeting["owner"] != principal.user_id:
                await connection.execute(
                    """INSERT INTO meeting_members (id, meeting, "user", role) VALUES ($1, $2, $3, 'participant')
                       ON CONFLICT (meeting, "user") DO NOTHING""",
                    uuid.uuid4(),
                    meeting_id,
                    principal.user_id,
                )
            log.info("meetings.joined", extra={"meeting_id": str(meeting_id), "user_id": str(principal.user_id)})
            return Joined(meeting_id=meeting_id)
    log.info("meetings.guest_joined", extra={"meeting_id": str(meeting_id), "user_id": str(guest_id)})
    settings = services.settings
    return Joined(
        meeting_id=meeting_id,
        guest_token=issue_guest_token(settings, guest_id, meeting_id),
        expires_in=settings.guest_token_ttl_s,
    )


# --- seed ----------------------------------------------------------------------------------


async def ensure_demo_meeting(pool: asyncpg.Pool, email: str, password: str) -> Meeting:
    """The demo owner and their live meeting, created on first call and reused after."""
    async with pool.acquire() as connection, connection.transaction():
        owner_id = await connection.fetchval("SELECT id FROM users WHERE email = $1", email)
        if owner_id is None:
            owner_id = uuid.uuid4()
            await connection.execute(
                "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, $3, 'Demo Owner')",
                owner_id,
                email,
                await hash_password(password),
            )
        row = await connection.fetchrow(
            f"SELECT {MEETING_COLUMNS} FROM meetings WHERE owner = $1 ORDER BY created_at LIMIT 1", owner_id
        )
        if row is not None:
            return meeting_of(row)
        return await insert_meeting(
            connection,
            owner_id=owner_id,
            title="roomcast demo",
            description="Ask anything. Upvote the questions you want answered.",
            status="live",
            settings=MeetingSettings(blocked_words=["spam"]),
        )
