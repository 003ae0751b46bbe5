"""Meetings: the rules and persistence behind REST setup, shared with the realtime side and the seed command.

Every function that changes a meeting does it in one transaction and tells the realtime side
(`server.meetings.events`) only after that transaction has committed. Inputs are untrusted:
they have passed the strict schema check of `server.rest.decode`, not yet the rules here.

Rows are read and written through the Piccolo tables (`server.meetings.tables`); the one
hand-written statement left, `load_meeting`, says why.

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
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from piccolo.columns import Column

from server import cache
from server.auth.identity import Principal
from server.auth.passwords import hash_password
from server.auth.service import display_name, normalise_email
from server.auth.tables import User
from server.auth.tokens import issue_guest_token
from server.db import NOW
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
from server.meetings.tables import Meeting as MeetingTable
from server.meetings.tables import MeetingMember
from server.notifications import triggers
from server.rest import clean_text, invalid
from server.services import Services

log = logging.getLogger("roomcast.meetings")

JOIN_CODE_ATTEMPTS = 10
MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
DEFAULT_PAGE = 50

MEETING_FIELDS: tuple[Column, ...] = (
    MeetingTable.id,
    MeetingTable.title,
    MeetingTable.description,
    MeetingTable.starts_at,
    MeetingTable.ends_at,
    MeetingTable.status,
    MeetingTable.join_code,
    MeetingTable.settings,
    MeetingTable.owner,
    MeetingTable.created_at,
    MeetingTable.source,
)
"""The columns `meeting_of` reads."""

MEETING_COLUMNS = ", ".join(column._meta.db_column_name for column in MEETING_FIELDS)
"""`MEETING_FIELDS` for hand-written statements."""

"""The database's clock, as the column defaults of the migrations use it."""

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


def meeting_of(row: Mapping[str, Any]) -> Meeting:
    """A `meetings` row (selected with `MEETING_FIELDS` or `MEETING_COLUMNS`) as the documented `Meeting`."""
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
        # hand-written: every join's snapshot reads it, and through Piccolo it costs 0.3-0.5 ms more (measured)
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
    presented = MeetingMember.select(MeetingMember.meeting).where(
        MeetingMember.user == user_id, MeetingMember.role == "presenter"
    )
    page = MeetingTable.select(*MEETING_FIELDS).where(
        (MeetingTable.owner == user_id) | MeetingTable.id.is_in(presented)
    )
    if cursor:
        created_at, meeting_id = _decode_cursor(cursor)
        # (created_at, id) < (cursor), the first term bounding the scan of the (owner, created_at, id) index
        page = page.where(
            MeetingTable.created_at <= created_at,
            (MeetingTable.created_at < created_at) | (MeetingTable.id < meeting_id),
        )
    rows = await page.order_by(MeetingTable.created_at, MeetingTable.id, ascending=False).limit(limit + 1)
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

    Values must already be valid. Runs in the caller's Piccolo transaction if one is open, each
    attempt in its own savepoint, so a collision does not abort the caller's transaction.
    """
    meeting = MeetingTable(
        owner=owner_id,
        title=title,
        description=description,
        starts_at=starts_at,
        ends_at=ends_at,
        status=status,
        settings=msgspec.json.encode(settings or MeetingSettings()).decode(),
        source=None if source is None else msgspec.json.encode(source).decode(),
        created_at=NOW,
        updated_at=NOW,
    )
    async with MeetingTable._meta.db.transaction() as transaction:
        for _ in range(JOIN_CODE_ATTEMPTS):
            meeting.id = uuid.uuid4()
            meeting.join_code = new_join_code()
            try:
                # asyncpg's nested transaction is a savepoint, whichever kind of transaction holds the
                # connection (Piccolo's, or a held connection's under `server.db.on_connection`)
                async with transaction.connection.transaction():
                    rows = await MeetingTable.insert(meeting).returning(*MEETING_FIELDS)
            except asyncpg.UniqueViolationError as err:
                if "join_code" not in (err.constraint_name or str(err)):
                    raise
                continue
            return meeting_of(rows[0])
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
    meeting = await insert_meeting(
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
    async with services.db.engine.transaction():
        row = await MeetingTable.select(*MEETING_FIELDS).where(MeetingTable.id == meeting_id).lock_rows().first()
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
        values: dict[Column | str, Any] = {
            MeetingTable.title: title,
            MeetingTable.description: description,
            MeetingTable.starts_at: starts_at,
            MeetingTable.ends_at: ends_at,
            MeetingTable.status: status,
            MeetingTable.settings: msgspec.json.encode(settings).decode(),
            MeetingTable.updated_at: NOW,
        }
        rows = await MeetingTable.update(values).where(MeetingTable.id == meeting_id).returning(*MEETING_FIELDS)
    meeting = meeting_of(rows[0])
    log.info(
        "meetings.updated",
        extra={"meeting_id": str(meeting_id), "status": meeting.status, "previous_status": current.status},
    )
    await publish_meeting_updated(services, meeting)
    return meeting


async def delete_meeting(services: Services, meeting_id: uuid.UUID) -> None:
    """Delete the meeting with its members, guests and questions; then close everyone's sockets in its rooms."""
    deleted = await MeetingTable.delete().where(MeetingTable.id == meeting_id).returning(MeetingTable.id)
    if not deleted:
        raise not_found("no such meeting")
    await cache.invalidate(services, cache.meeting_scope(meeting_id))
    log.info("meetings.deleted", extra={"meeting_id": str(meeting_id)})
    await close_meeting_rooms(services, meeting_id)


async def add_presenter(services: Services, meeting_id: uuid.UUID, email: str) -> Presenter:
    """Make the account with `email` a presenter (also when it was a participant); idempotent."""
    email = normalise_email(email)
    async with services.db.engine.transaction():
        user = await User.select(User.id).where(User.email == email).first()
        if user is None:
            raise not_found("no user with this email")
        user_id: uuid.UUID = user["id"]
        meeting = await MeetingTable.select(MeetingTable.owner).where(MeetingTable.id == meeting_id).lock_rows().first()
        if meeting is None:
            raise not_found("no such meeting")
        if meeting["owner"] == user_id:
            raise conflict("the owner already runs this meeting")
        member = MeetingMember(meeting=meeting_id, user=user_id, role="presenter", created_at=NOW)
        promoted = await (
            MeetingMember.insert(member)
            .on_conflict(
                target=(MeetingMember.meeting, MeetingMember.user),
                action="DO UPDATE",
                values=[MeetingMember.role],
                where=MeetingMember.role != "presenter",
            )
            .returning(MeetingMember.id)
        )
    log.info("meetings.presenter_added", extra={"meeting_id": str(meeting_id), "user_id": str(user_id)})
    if promoted:
        await cache.invalidate(services, cache.meeting_scope(meeting_id))
        await triggers.presenter_added(services, meeting_id, user_id)
    return Presenter(user_id=user_id, role="presenter")


async def list_presenters(services: Services, meeting_id: uuid.UUID) -> PresenterList:
    """The meeting's presenters, oldest first (the owner is not one)."""
    rows = await (
        MeetingMember.select(
            MeetingMember.user,
            MeetingMember.user.email.as_alias("email"),
            MeetingMember.user.display_name.as_alias("name"),
        )
        .where(MeetingMember.meeting == meeting_id, MeetingMember.role == "presenter")
        .order_by(MeetingMember.created_at, MeetingMember.user)
    )
    return PresenterList(
        items=[PresenterItem(user_id=r["user"], email=r["email"], display_name=r["name"]) for r in rows]
    )


async def remove_presenter(services: Services, meeting_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Remove a presenter from the meeting (404 if they are not one) and close their sockets in its rooms."""
    removed = await (
        MeetingMember.delete()
        .where(MeetingMember.meeting == meeting_id, MeetingMember.user == user_id, MeetingMember.role == "presenter")
        .returning(MeetingMember.id)
    )
    if not removed:
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
    async with services.db.engine.transaction():
        meeting = (
            await MeetingTable.select(MeetingTable.id, MeetingTable.owner, MeetingTable.status)
            .where(MeetingTable.join_code == code)
            .first()
        )
        if meeting is None:
            raise not_found("no meeting has this join code")
        meeting_id: uuid.UUID = meeting["id"]
        if meeting["status"] in CLOSED:
            raise conflict(f"the meeting is {meeting['status']}")
        if principal is None:
            assert guest_name is not None
            guest_id = uuid.uuid4()
            await User.insert(User(id=guest_id, display_name=guest_name, guest_meeting_id=meeting_id, created_at=NOW))
        elif principal.guest:
            if principal.guest_meeting_id != meeting_id:
                raise forbidden("a guest token is valid only for its own meeting; join without it")
            return Joined(meeting_id=meeting_id)
        else:
            if meeting["owner"] != principal.user_id:
                participant = MeetingMember(
                    meeting=meeting_id, user=principal.user_id, role="participant", created_at=NOW
                )
                await MeetingMember.insert(participant).on_conflict(
                    target=(MeetingMember.meeting, MeetingMember.user), action="DO NOTHING"
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


async def ensure_demo_meeting(email: str, password: str) -> Meeting:
    """The demo owner and their live meeting, created on first call and reused after (on the started `Database`)."""
    async with MeetingTable._meta.db.transaction():
        owner = await User.select(User.id).where(User.email == email).first()
        if owner is None:
            owner_id = uuid.uuid4()
            password_hash = await hash_password(password)
            demo_owner = User(
                id=owner_id, email=email, password_hash=password_hash, display_name="Demo Owner", created_at=NOW
            )
            await User.insert(demo_owner)
        else:
            owner_id = owner["id"]
        row = (
            await MeetingTable.select(*MEETING_FIELDS)
            .where(MeetingTable.owner == owner_id)
            .order_by(MeetingTable.created_at)
            .first()
        )
        if row is not None:
            return meeting_of(row)
        return await insert_meeting(
            owner_id=owner_id,
            title="roomcast demo",
            description="Ask anything. Upvote the questions you want answered.",
            status="live",
            settings=MeetingSettings(blocked_words=["spam"]),
        )
