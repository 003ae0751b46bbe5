"""Calendar sync: connections, the connect flow, reading events for new meetings, and token handling.

One `Calendar` per process (the app's and each job's) holds the enabled providers. Provider
libraries block, so every provider call runs in a thread. Sync itself is in
`server.calendar.sync`; webhooks in `server.calendar.webhooks`.

Invariants kept here:
- Provider tokens are stored only encrypted (`crypto.TokenBox`) and never leave the server.
- Tokens are loaded, refreshed and saved under a per-connection Redis lock (`tokens` below):
  Microsoft rotates refresh tokens, so two refreshes racing could strand one with `invalid_grant`.
- The connect `state` is signed (names the user and provider, expires) and single use: the flow
  data it points to is taken out of Redis with GETDEL, so a replayed state finds nothing.
- A provider that is off (no client id) is unknown here: its endpoints answer 404.

Rows are read and written through the Piccolo tables (`server.calendar.tables`); a connection's row
is a dict of `CONNECTION_COLUMNS`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec
from piccolo.columns import Column
from saq import Queue

from server.auth.tables import User
from server.calendar.crypto import State, StateSigner, TokenBox
from server.calendar.providers.base import (
    CalEvent,
    NotFound,
    Provider,
    ProviderError,
    RateLimited,
    Revoked,
    Tokens,
    Unauthorized,
)
from server.calendar.schemas import CalendarEventOut, CalendarEventPage, Connection
from server.calendar.tables import CalendarConnection, CalendarEvent
from server.db import NOW
from server.errors import ApiError, bad_request, conflict, not_found
from server.meetings.schemas import SourceEvent, SourceIn
from server.services import Services

log = logging.getLogger("roomcast.calendar")

T = TypeVar("T")

PROVIDERS = ("google", "outlook")
STATE_TTL_S = 600
"""How long a connect flow may take between `connect` and the provider's redirect back."""
TOKEN_LOCK_S = 30
SYNC_TIMEOUT_S = 300
SYNC_RETRIES = 4
PENDING_TTL_S = SYNC_TIMEOUT_S
RATE_LIMIT_ATTEMPTS = 5
MAX_RETRY_AFTER_S = 60.0

Row = dict[str, Any]

CONNECTION_COLUMNS: tuple[Column, ...] = (
    CalendarConnection.id, CalendarConnection.user, CalendarConnection.provider, CalendarConnection.account_email,
    CalendarConnection.status, CalendarConnection.error, CalendarConnection.revoked, CalendarConnection.tokens,
    CalendarConnection.sync_cursor, CalendarConnection.channel_id, CalendarConnection.channel_resource_id,
    CalendarConnection.channel_expires_at, CalendarConnection.channel_created_at, CalendarConnection.last_synced_at,
    CalendarConnection.created_at,
)  # fmt: skip
"""What a connection's row holds here (`Calendar.load`)."""


def build_providers(services: Services) -> dict[str, Provider]:
    """The providers whose client id is set; the others are off."""
    settings = services.settings
    providers: dict[str, Provider] = {}
    if settings.google_client_id:
        from server.calendar.providers.google import GoogleCalendar

        providers["google"] = GoogleCalendar(settings)
    if settings.microsoft_client_id:
        from server.calendar.providers.microsoft import OutlookCalendar

        providers["outlook"] = OutlookCalendar(settings)
    return providers


CONNECTION_VIEW_FIELDS: tuple[Column, ...] = (
    CalendarConnection.id,
    CalendarConnection.provider,
    CalendarConnection.account_email,
    CalendarConnection.status,
    CalendarConnection.error,
    CalendarConnection.last_synced_at,
    CalendarConnection.created_at,
)
"""What `connection_of` reads: never the tokens."""


def connection_of(row: Mapping[str, Any]) -> Connection:
    return Connection(
        id=row["id"],
        provider=row["provider"],
        account_email=row["account_email"],
        status=row["status"],
        error=row["error"],
        last_synced_at=row["last_synced_at"],
        created_at=row["created_at"],
    )


class Calendar:
    """Calendar sync for one process: `services`, the job `queue`, and the enabled providers."""

    def __init__(self, services: Services, queue: Queue) -> None:
        self.services = services
        self.queue = queue
        self.providers = build_providers(services)
        self.box = TokenBox(services.settings)
        self.signer = StateSigner(services.settings)

    # --- providers and addresses ---------------------------------------------------------

    def provider(self, name: str) -> Provider:
        """The enabled provider `name`; 404 for an unknown one or one that is off."""
        provider = self.providers.get(name)
        if provider is None:
            raise not_found(f"calendar provider {name!r} is not enabled on this server")
        return provider

    def redirect_uri(self, provider: str) -> str:
        return f"{self.services.settings.public_url.rstrip('/')}/api/v1/calendar/{provider}/callback"

    def webhook_address(self, provider: str) -> str:
        return f"{self.services.settings.public_url.rstrip('/')}/api/v1/calendar/webhooks/{provider}"

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking provider call in a thread.

        The provider modules turn the errors they know into `ProviderError`s; anything else a client
        library raises (a new exception type, a malformed answer) is logged and becomes a
        `ProviderError` too, so a provider's surprise is a retry or a 503, never a 500.
        """
        try:
            return await asyncio.to_thread(function, *args)
        except ProviderError:
            raise
        except Exception as err:
            log.exception("calendar.provider_unexpected", extra={"error": type(err).__name__})
            raise ProviderError(f"the provider's client failed: {type(err).__name__}") from None

    # --- connect -------------------------------------------------------------------------

    async def authorization_url(self, user_id: uuid.UUID, provider_name: str) -> str:
        """Start a connect flow: a signed state bound to the user, its flow data kept in Redis once."""
        provider = self.provider(provider_name)
        nonce = secrets.token_urlsafe(24)
        state = self.signer.sign(State(nonce, str(user_id), provider_name, int(time.time()) + STATE_TTL_S))
        try:
            url, flow = await self.call(provider.authorization, self.redirect_uri(provider_name), state)
        except ProviderError as err:
            log.warning("calendar.connect_failed", extra={"provider": provider_name, "error": str(err)})
            raise ApiError(503, "the calendar provider could not be reached; try again", code="unavailable") from None
        record = {"user_id": str(user_id), "provider": provider_name, "flow": flow}
        await self.services.redis.set(
            self.services.key("calendar", "state", nonce), msgspec.json.encode(record), ex=STATE_TTL_S
        )
        log.info("calendar.connect_started", extra={"provider": provider_name, "user_id": str(user_id)})
        return url

    async def complete(self, provider_name: str, params: dict[str, str]) -> uuid.UUID:
        """The provider's redirect back: check the state, redeem the code, store the connection, enqueue a sync.

        A forged, expired, replayed or foreign state is 400 and stores nothing.
        """
        provider = self.provider(provider_name)
        state = self.signer.verify(params.get("state", ""), provider_name)
        if state is None:
            raise bad_request("the state is invalid or expired; start connecting again")
        raw = await self.services.redis.getdel(self.services.key("calendar", "state", state.nonce))
        if raw is None:
            raise bad_request("this connect link was already used or has expired; start connecting again")
        record = msgspec.json.decode(raw)
        if record.get("user_id") != state.user_id or record.get("provider") != provider_name:
            raise bad_request("the state does not match its flow")
        if "error" in params:
            raise bad_request(f"the provider did not grant access ({params['error'][:100]})")
        try:
            grant = await self.call(provider.redeem, record["flow"], params, self.redirect_uri(provider_name))
        except ProviderError as err:
            log.warning("calendar.redeem_failed", extra={"provider": provider_name, "error": str(err)[:300]})
            raise bad_request("the provider refused the authorization code; start connecting again") from None
        user_id = uuid.UUID(state.user_id)
        if not await User.exists().where(User.id == user_id):
            raise bad_request("the account that started connecting no longer exists")
        row = CalendarConnection(
            id=uuid.uuid4(),
            user=user_id,
            provider=provider_name,
            account_email=grant.account_email[:320],
            tokens=self.box.seal(grant.tokens),
        )
        stored = (
            await CalendarConnection.insert(row)
            .on_conflict(
                target=(CalendarConnection.user, CalendarConnection.provider, CalendarConnection.account_email),
                action="DO UPDATE",
                values=[
                    CalendarConnection.tokens,
                    (CalendarConnection.status, "active"),
                    (CalendarConnection.error, None),
                    (CalendarConnection.revoked, False),
                    (CalendarConnection.updated_at, NOW),
                ],
            )
            .returning(CalendarConnection.id)
        )
        connection_id: uuid.UUID = stored[0]["id"]
        log.info(
            "calendar.connected",
            extra={"provider": provider_name, "user_id": str(user_id), "connection_id": str(connection_id)},
        )
        await self.request_sync(connection_id)
        return connection_id

    # --- connections ---------------------------------------------------------------------

    async def load(self, connection_id: uuid.UUID) -> Row | None:
        row: Row | None = (
            await CalendarConnection.select(*CONNECTION_COLUMNS).where(CalendarConnection.id == connection_id).first()
        )
        return row

    async def owned(self, user_id: uuid.UUID, connection_id: uuid.UUID | str) -> Row:
        """The caller's connection; 404 for one that is not theirs or does not exist."""
        try:
            ident = connection_id if isinstance(connection_id, uuid.UUID) else uuid.UUID(connection_id)
        except ValueError:
            raise not_found("no such calendar connection") from None
        row = await self.load(ident)
        if row is None or row["user"] != user_id:
            raise not_found("no such calendar connection")
        return row

    async def connections(self, user_id: uuid.UUID) -> list[Connection]:
        rows = (
            await CalendarConnection.select(*CONNECTION_VIEW_FIELDS)
            .where(CalendarConnection.user == user_id)
            .order_by(CalendarConnection.created_at, CalendarConnection.id)
        )
        return [connection_of(row) for row in rows]

    async def disconnect(self, user_id: uuid.UUID, connection_id: uuid.UUID) -> None:
        """Stop the provider's channel (best effort), then delete the connection with its tokens and events."""
        row = await self.owned(user_id, connection_id)
        provider = self.providers.get(row["provider"])
        if provider is not None and row["channel_id"] and not row["revoked"]:
            from server.calendar.providers.base import Channel

            channel = Channel(row["channel_id"], row["channel_resource_id"], row["channel_expires_at"])
            try:
                await self.with_token(row, lambda token: provider.stop(token, channel))
            except (ProviderError, ValueError) as err:
                log.warning(
                    "calendar.stop_failed", extra={"connection_id": str(connection_id), "error": str(err)[:200]}
                )
        await CalendarConnection.delete().where(CalendarConnection.id == connection_id)
        log.info("calendar.disconnected", extra={"connection_id": str(connection_id), "user_id": str(user_id)})

    async def manual_sync(self, user_id: uuid.UUID, connection_id: uuid.UUID) -> Connection:
        row = await self.owned(user_id, connection_id)
        if row["revoked"]:
            raise conflict("the account revoked roomcast's access: connect it again")
        await self.request_sync(connection_id)
        return connection_of(row)

    async def upcoming(self, user_id: uuid.UUID, connection_id: uuid.UUID, limit: int) -> CalendarEventPage:
        """The next events the last sync saw (not cancelled, not yet ended), soonest first."""
        await self.owned(user_id, connection_id)
        # hand SQL: meetings follow an event through fields of their JSONB `source` (no foreign key to traverse),
        # matched with `->>` so the expression index serves it; Piccolo's JSONB offers only `->`
        rows = await CalendarEvent.raw(
            """SELECT e.event_id, e.title, e.starts_at, e.ends_at,
                      coalesce(array_agg(m.id) FILTER (WHERE m.id IS NOT NULL), ARRAY[]::uuid[]) AS meeting_ids
               FROM calendar_events e
               LEFT JOIN meetings m ON m.source IS NOT NULL
                    AND m.source->>'connection_id' = e.connection::text
                    AND m.source->>'calendar_event_id' = e.event_id
               WHERE e.connection = {} AND NOT e.cancelled AND coalesce(e.ends_at, e.starts_at) >= now()
               GROUP BY e.id ORDER BY e.starts_at, e.event_id LIMIT {}""",
            connection_id,
            limit,
        )
        return CalendarEventPage(
            items=[
                CalendarEventOut(
                    calendar_event_id=row["event_id"],
                    title=row["title"],
                    starts_at=row["starts_at"],
                    ends_at=row["ends_at"],
                    meeting_ids=list(row["meeting_ids"]),
                )
                for row in rows
            ]
        )

    async def read_source(self, user_id: uuid.UUID, source: SourceIn) -> SourceEvent:
        """The event a new meeting is created from, read from the provider (meetings' `EventReader`)."""
        row = await self.owned(user_id, source.connection_id)
        provider = self.providers.get(row["provider"])
        if provider is None:
            raise not_found("this calendar provider is not enabled on this server")
        if row["revoked"]:
            raise conflict("the account revoked roomcast's access: connect it again")
        event_id = source.calendar_event_id
        if not event_id or len(event_id) > 1024:
            raise not_found("no such calendar event")
        try:
            event: CalEvent = await self.with_token(row, lambda token: provider.get_event(token, event_id))
        except NotFound:
            raise not_found("no such calendar event") from None
        except Revoked as err:
            await self.mark_revoked(row, str(err))
            raise conflict("the account revoked roomcast's access: connect it again") from None
        except ProviderError as err:
            log.warning("calendar.read_failed", extra={"connection_id": str(row["id"]), "error": str(err)[:200]})
            raise ApiError(503, "the calendar provider did not answer; try again", code="unavailable") from None
        if event.cancelled:
            raise not_found("this calendar event was cancelled")
        await self.remember(row["id"], event)
        return SourceEvent(
            provider=row["provider"], title=event.title, starts_at=event.starts_at, ends_at=event.ends_at
        )

    async def remember(self, connection_id: uuid.UUID, event: CalEvent) -> None:
        """Hold `event` as the base of the next diff (so creating a meeting from it is not itself a change)."""
        await hold_events(connection_id, [event])

    # --- tokens --------------------------------------------------------------------------

    @asynccontextmanager
    async def token_lock(self, connection_id: uuid.UUID) -> AsyncIterator[None]:
        lock = self.services.redis.lock(
            self.services.key("calendar", "tokens", str(connection_id)),
            timeout=TOKEN_LOCK_S,
            blocking_timeout=TOKEN_LOCK_S,
        )
        if not await lock.acquire():
            raise ProviderError("another process held this connection's tokens too long")
        try:
            yield
        finally:
            try:
                await lock.release()
            except Exception:  # expired meanwhile: nothing to release
                log.warning("calendar.token_lock_lost", extra={"connection_id": str(connection_id)})

    async def access_token(self, row: Row, *, force: bool = False) -> str:
        """A valid access token for the connection: load, refresh if needed and save, under the token lock."""
        provider = self.provider(row["provider"])
        async with self.token_lock(row["id"]):
            stored = (
                await CalendarConnection.select(CalendarConnection.tokens)
                .where(CalendarConnection.id == row["id"])
                .first()
            )
            if stored is None:
                raise NotFound("the connection was deleted")
            sealed: str = stored["tokens"]
            try:
                raw, stale = self.box.open(sealed)
            except ValueError as err:
                raise Revoked(str(err)) from None
            tokens = Tokens(raw=raw, changed=stale)
            token = await self.call(lambda: provider.access_token(tokens, force=force))
            if tokens.changed:
                await CalendarConnection.update(
                    {CalendarConnection.tokens: self.box.seal(tokens.raw), CalendarConnection.updated_at: NOW}
                ).where(CalendarConnection.id == row["id"])
        return token

    async def with_token(self, row: Row, action: Callable[[str], T]) -> T:
        """Run `action(access_token)` in a thread: refresh once on 401, wait out rate limits (`Retry-After`)."""
        refreshed = False
        for attempt in range(RATE_LIMIT_ATTEMPTS):
            token = await self.access_token(row, force=refreshed)
            try:
                return await self.call(action, token)
            except Unauthorized:
                if refreshed:
                    raise
                refreshed = True
                log.info("calendar.token_refresh_on_401", extra={"connection_id": str(row["id"])})
            except RateLimited as err:
                if attempt == RATE_LIMIT_ATTEMPTS - 1:
                    raise
                delay = min(MAX_RETRY_AFTER_S, max(err.retry_after, 0.2 * 2**attempt))
                log.info(
                    "calendar.rate_limited",
                    extra={"connection_id": str(row["id"]), "retry_after_s": delay, "error": str(err)},
                )
                await asyncio.sleep(delay)
        raise ProviderError("gave up after repeated rate limits")

    async def mark_revoked(self, row: Row, reason: str) -> bool:
        """Mark the connection `error` for good; notify the owner the first time only. True if this call did."""
        from server.notifications.service import notify

        changed = (
            await CalendarConnection.update(
                {
                    CalendarConnection.status: "error",
                    CalendarConnection.revoked: True,
                    CalendarConnection.error: reason[:500],
                    CalendarConnection.updated_at: NOW,
                }
            )
            .where((CalendarConnection.id == row["id"]) & (CalendarConnection.revoked == False))  # noqa: E712
            .returning(CalendarConnection.id)
        )
        if not changed:
            return False
        log.warning("calendar.revoked", extra={"connection_id": str(row["id"]), "provider": row["provider"]})
        label = "Google Calendar" if row["provider"] == "google" else "Outlook"
        try:
            await notify(
                self.services,
                row["user"],
                "calendar.sync_failed",
                f"{label} sync stopped",
                f"{row['account_email'] or label} no longer allows roomcast to read the calendar. Connect it again.",
                {"connection_id": str(row["id"]), "provider": row["provider"], "reason": reason[:200]},
            )
        except Exception:
            log.exception("calendar.notify_failed", extra={"connection_id": str(row["id"])})
        return True

    # --- sync jobs -----------------------------------------------------------------------

    async def request_sync(self, connection_id: uuid.UUID) -> bool:
        """Enqueue a sync unless one is already waiting to start (webhooks coalesce). True if enqueued.

        A sync job clears the `pending` flag only once it holds the connection's sync lock, so a
        webhook during a running sync enqueues exactly one more, and a burst of webhooks before it
        starts enqueues nothing more.
        """
        pending = self.services.key("calendar", "pending", str(connection_id))
        if not await self.services.redis.set(pending, b"1", nx=True, ex=PENDING_TTL_S):
            return False
        try:
            await self.queue.enqueue(
                "calendar_sync",
                key=f"calendar-sync:{connection_id}:{secrets.token_hex(6)}",
                connection_id=str(connection_id),
                timeout=SYNC_TIMEOUT_S,
                retries=SYNC_RETRIES,
                retry_delay=2.0,
                retry_backoff=60.0,
            )
        except Exception:
            await self.services.redis.delete(pending)
            raise
        return True

    async def request_renewal(self, connection_id: uuid.UUID) -> None:
        await self.queue.enqueue(
            "calendar_renew",
            key=f"calendar-renew:{connection_id}",
            connection_id=str(connection_id),
            timeout=120,
            retries=3,
            retry_delay=5.0,
            retry_backoff=60.0,
        )


HOLD_BATCH = 1000
"""Events upserted per statement (eight parameters each, well under PostgreSQL's 32,767)."""


async def hold_events(connection_id: uuid.UUID, events: list[CalEvent]) -> None:
    """Store `events` as what we last saw of them: the base of the next diff.

    An event listed twice keeps its last version: one multi-row upsert may not touch a row twice.
    """
    events = list({event.id: event for event in events}.values())
    for start in range(0, len(events), HOLD_BATCH):
        rows = [
            CalendarEvent(
                id=uuid.uuid4(),
                connection=connection_id,
                event_id=event.id,
                title=event.title,
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                cancelled=event.cancelled,
            )
            for event in events[start : start + HOLD_BATCH]
        ]
        await CalendarEvent.insert(*rows).on_conflict(
            target=(CalendarEvent.connection, CalendarEvent.event_id),
            action="DO UPDATE",
            values=[
                CalendarEvent.title,
                CalendarEvent.starts_at,
                CalendarEvent.ends_at,
                CalendarEvent.cancelled,
                (CalendarEvent.updated_at, NOW),
            ],
        )


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
